//! `RUN --mount=type=...,key=value,...` parsed into a typed [`Mount`].
//!
//! The value is one CSV record (Go's `encoding/csv`: `"` quotes a field, `""` escapes a quote).
//! Field values expand at build time, except `from`, which BuildKit never expands (use an alias
//! stage instead). A mount whose fields are all literal is validated at parse time; one with
//! `$VAR`s is validated again after expansion ([`MountSpec::expand`]).

use crate::error::MountError;
use crate::suggest::suggest;

const TYPES: [&str; 5] = ["bind", "cache", "tmpfs", "secret", "ssh"];
const KEYS: [&str; 19] = [
    "type",
    "from",
    "source",
    "src",
    "target",
    "dst",
    "destination",
    "readonly",
    "ro",
    "readwrite",
    "rw",
    "required",
    "id",
    "sharing",
    "mode",
    "uid",
    "gid",
    "size",
    "env",
];

/// The kind of a `RUN --mount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl MountType {
    /// The name used in `type=`.
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

/// `sharing=` of a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

/// A fully parsed (and, at build time, expanded) mount. Defaults that depend on other fields
/// (a secret's target `/run/secrets/<id>`, an ssh id `default`) are left to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub kind: MountType,
    /// `target`/`dst`/`destination`.
    pub target: Option<String>,
    /// `source`/`src`: a path in the context, the stage/image, or the cache/secret source.
    pub source: Option<String>,
    /// `from`: a stage name, stage index or image (bind and cache mounts).
    pub from: Option<String>,
    /// `ro`/`readonly`, `rw`/`readwrite`; by default cache and tmpfs mounts are writable and
    /// the others read-only.
    pub read_only: bool,
    /// `id` (cache id, secret id, ssh id).
    pub id: Option<String>,
    /// `sharing` of a cache mount (`shared` unless given).
    pub sharing: Sharing,
    /// `mode` (octal), `uid`, `gid`: ownership of cache, secret and ssh mounts.
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// `size` of a tmpfs mount in bytes (`64m`, `1g`).
    pub size: Option<u64>,
    /// `required` (secret, ssh): fail when the secret is not provided.
    pub required: bool,
    /// `env` (secret): expose the secret as this environment variable.
    pub env: Option<String>,
}

/// One `--mount` value: the raw text and, when every field was literal, its parsed form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// The flag value as written.
    pub raw: String,
    /// The `from=` field (never expanded), for planning stage dependencies.
    pub from: Option<String>,
    /// The parsed mount when no field uses a variable; otherwise known only after expansion.
    pub mount: Option<Mount>,
}

impl MountSpec {
    /// Parses and (when literal) validates a `--mount` value.
    pub(crate) fn parse(raw: &str) -> Result<MountSpec, MountError> {
        let fields = csv_fields(raw)?;
        let mut from = None;
        let mut literal = true;
        for field in &fields {
            if let Some((key, value)) = field.split_once('=') {
                if key.eq_ignore_ascii_case("from") {
                    if has_variable(value) {
                        return Err(MountError::FromVariable);
                    }
                    from = Some(value.to_string());
                } else if value.contains('$') {
                    literal = false;
                }
            }
        }
        let mount = if literal {
            Some(parse_fields(&fields, &mut |_, v| Ok(v.to_string()))?)
        } else {
            None
        };
        Ok(MountSpec {
            raw: raw.to_string(),
            from,
            mount,
        })
    }
}

/// `\$.` anywhere: BuildKit's test for a variable in `from=`.
fn has_variable(value: &str) -> bool {
    value.find('$').is_some_and(|at| at + 1 < value.len())
}

/// Parses mount fields; `value` maps (key, raw value) to the value to use (expanded or not).
pub(crate) fn parse_fields<E: From<MountError>>(
    fields: &[String],
    value: &mut dyn FnMut(&str, &str) -> Result<String, E>,
) -> Result<Mount, E> {
    let mut m = Mount {
        kind: MountType::Bind,
        target: None,
        source: None,
        from: None,
        read_only: true,
        id: None,
        sharing: Sharing::Shared,
        mode: None,
        uid: None,
        gid: None,
        size: None,
        required: false,
        env: None,
    };
    let mut read_only: Option<bool> = None;
    let mut sharing_set = false;
    for field in fields {
        let (key, raw) = match field.split_once('=') {
            Some((key, raw)) => (key.to_ascii_lowercase(), raw),
            None => {
                match field.to_ascii_lowercase().as_str() {
                    "readonly" | "ro" => read_only = Some(true),
                    "readwrite" | "rw" => read_only = Some(false),
                    "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
                        m.required = true
                    }
                    "required" => {
                        return Err(MountError::KeyNotAllowed {
                            key: "required".into(),
                            kind: m.kind.as_str(),
                        }
                        .into());
                    }
                    _ => {
                        return Err(MountError::NotKeyValue {
                            field: field.clone(),
                        }
                        .into());
                    }
                }
                continue;
            }
        };
        let v = if key == "from" {
            raw.to_string()
        } else {
            value(&key, raw)?
        };
        let invalid = || MountError::InvalidValue {
            key: key.clone(),
            value: v.clone(),
        };
        match key.as_str() {
            "type" => {
                m.kind = match v.to_ascii_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => {
                        let suggestion = suggest(&v, &TYPES).map(str::to_string);
                        return Err(MountError::UnsupportedType {
                            value: v,
                            suggestion,
                        }
                        .into());
                    }
                }
            }
            "from" => m.from = Some(v),
            "source" | "src" => m.source = Some(v),
            "target" | "dst" | "destination" => m.target = Some(v),
            "readonly" | "ro" => read_only = Some(parse_bool(&v).ok_or_else(invalid)?),
            "readwrite" | "rw" => read_only = Some(!parse_bool(&v).ok_or_else(invalid)?),
            "required" => {
                if !matches!(m.kind, MountType::Secret | MountType::Ssh) {
                    return Err(MountError::KeyNotAllowed {
                        key,
                        kind: m.kind.as_str(),
                    }
                    .into());
                }
                m.required = parse_bool(&v).ok_or_else(invalid)?;
            }
            "id" => m.id = Some(v),
            "sharing" => {
                sharing_set = true;
                m.sharing = match v.to_ascii_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => return Err(MountError::UnsupportedSharing { value: v }.into()),
                }
            }
            "mode" => m.mode = Some(u32::from_str_radix(&v, 8).map_err(|_| invalid())?),
            "uid" => m.uid = Some(v.parse().map_err(|_| invalid())?),
            "gid" => m.gid = Some(v.parse().map_err(|_| invalid())?),
            "size" => m.size = Some(parse_size(&v).ok_or_else(invalid)?),
            "env" => m.env = Some(v),
            _ => {
                return Err(MountError::UnknownKey {
                    suggestion: suggest(&key, &KEYS).map(str::to_string),
                    key,
                    field: field.clone(),
                }
                .into());
            }
        }
    }
    let kind = m.kind.as_str();
    let owned = matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    for (key, set) in [
        ("mode", m.mode.is_some()),
        ("uid", m.uid.is_some()),
        ("gid", m.gid.is_some()),
    ] {
        if set && !owned {
            return Err(MountError::FieldNotAllowed { key, kind }.into());
        }
    }
    if m.size.is_some() && m.kind != MountType::Tmpfs {
        return Err(MountError::FieldNotAllowed { key: "size", kind }.into());
    }
    if sharing_set && m.kind != MountType::Cache {
        return Err(MountError::FieldNotAllowed {
            key: "sharing",
            kind,
        }
        .into());
    }
    if m.env.is_some() && m.kind != MountType::Secret {
        return Err(MountError::FieldNotAllowed { key: "env", kind }.into());
    }
    m.read_only = read_only.unwrap_or(!matches!(m.kind, MountType::Cache | MountType::Tmpfs));
    match m.kind {
        MountType::Secret => {
            if m.from.is_some() {
                return Err(MountError::SecretFrom.into());
            }
            if m.source.is_some() && m.id.is_some() {
                return Err(MountError::SecretSourceAndId.into());
            }
            if m.source.is_none() && m.target.is_none() && m.id.is_none() && m.env.is_none() {
                return Err(MountError::SecretTarget.into());
            }
        }
        MountType::Ssh => {}
        MountType::Bind | MountType::Cache | MountType::Tmpfs => {
            if m.target.as_deref().is_none_or(str::is_empty) {
                return Err(MountError::MissingTarget { kind }.into());
            }
        }
    }
    Ok(m)
}

/// Go's `strconv.ParseBool`.
fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// docker's `RAMInBytes`: `123`, `64m`, `1.5g`, `512KiB` (binary multiples).
fn parse_size(value: &str) -> Option<u64> {
    let number_len = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(number_len);
    let number: f64 = number.parse().ok()?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return None,
    };
    let bytes = number * (1u64 << shift) as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// One CSV record as Go's `encoding/csv` reads it (no lazy quotes, no space trimming).
pub(crate) fn csv_fields(raw: &str) -> Result<Vec<String>, MountError> {
    if raw.is_empty() {
        return Err(MountError::Csv {
            reason: "empty value",
        });
    }
    let mut fields = Vec::new();
    let mut chars = raw.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => {
                        return Err(MountError::Csv {
                            reason: "extraneous or missing \" in quoted-field",
                        });
                    }
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(_) => {
                    return Err(MountError::Csv {
                        reason: "extraneous or missing \" in quoted-field",
                    });
                }
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => {
                        return Err(MountError::Csv {
                            reason: "bare \" in non-quoted-field",
                        });
                    }
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Mount, MountError> {
        MountSpec::parse(raw).map(|spec| spec.mount.expect("literal mount"))
    }

    #[test]
    fn mount_defaults_by_type() {
        let bind = parse("target=/src").unwrap();
        assert_eq!((bind.kind, bind.read_only), (MountType::Bind, true));
        let cache = parse("type=cache,target=/root/.cache,id=go,sharing=locked,mode=0755,uid=1000")
            .unwrap();
        assert_eq!(cache.kind, MountType::Cache);
        assert!(!cache.read_only);
        assert_eq!(cache.sharing, Sharing::Locked);
        assert_eq!(
            (cache.mode, cache.uid, cache.id.as_deref()),
            (Some(0o755), Some(1000), Some("go"))
        );
        let tmpfs = parse("type=tmpfs,dst=/tmp,size=64m").unwrap();
        assert_eq!(tmpfs.size, Some(64 << 20));
        let secret = parse("type=secret,id=npm,required,env=NPM_TOKEN").unwrap();
        assert!(secret.required && secret.read_only);
        assert_eq!(secret.env.as_deref(), Some("NPM_TOKEN"));
        let bind_rw = parse("type=bind,from=builder,source=/out,target=/in,rw").unwrap();
        assert!(!bind_rw.read_only);
        assert_eq!(bind_rw.from.as_deref(), Some("builder"));
        let quoted = parse("type=bind,\"target=/a,b\"").unwrap();
        assert_eq!(quoted.target.as_deref(), Some("/a,b"));
    }

    #[test]
    fn mount_errors() {
        let cases = [
            (
                "type=nfs,target=/x",
                MountError::UnsupportedType {
                    value: "nfs".into(),
                    suggestion: None,
                },
            ),
            (
                "type=cahce,target=/x",
                MountError::UnsupportedType {
                    value: "cahce".into(),
                    suggestion: Some("cache".into()),
                },
            ),
            ("type=bind", MountError::MissingTarget { kind: "bind" }),
            (
                "target=/x,bogus=1",
                MountError::UnknownKey {
                    key: "bogus".into(),
                    field: "bogus=1".into(),
                    suggestion: None,
                },
            ),
            (
                "target=/x,sharng=locked",
                MountError::UnknownKey {
                    key: "sharng".into(),
                    field: "sharng=locked".into(),
                    suggestion: Some("sharing".into()),
                },
            ),
            (
                "target=/x,nonsense",
                MountError::NotKeyValue {
                    field: "nonsense".into(),
                },
            ),
            (
                "target=/x,mode=0644",
                MountError::FieldNotAllowed {
                    key: "mode",
                    kind: "bind",
                },
            ),
            (
                "type=cache,target=/x,sharing=open",
                MountError::UnsupportedSharing {
                    value: "open".into(),
                },
            ),
            (
                "type=bind,target=/x,sharing=locked",
                MountError::FieldNotAllowed {
                    key: "sharing",
                    kind: "bind",
                },
            ),
            (
                "type=cache,target=/x,uid=-1",
                MountError::InvalidValue {
                    key: "uid".into(),
                    value: "-1".into(),
                },
            ),
            (
                "type=cache,target=/x,mode=999",
                MountError::InvalidValue {
                    key: "mode".into(),
                    value: "999".into(),
                },
            ),
            ("type=secret,from=x,id=a", MountError::SecretFrom),
            ("type=secret,id=a,source=b", MountError::SecretSourceAndId),
            ("type=secret", MountError::SecretTarget),
            (
                "target=/x,required",
                MountError::KeyNotAllowed {
                    key: "required".into(),
                    kind: "bind",
                },
            ),
            (
                "target=/x,ro=maybe",
                MountError::InvalidValue {
                    key: "ro".into(),
                    value: "maybe".into(),
                },
            ),
            ("type=bind,from=$STAGE,target=/x", MountError::FromVariable),
            (
                "target=/x\"",
                MountError::Csv {
                    reason: "bare \" in non-quoted-field",
                },
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(MountSpec::parse(raw).unwrap_err(), want, "{raw}");
        }
    }

    #[test]
    fn mounts_with_variables_are_validated_after_expansion() {
        let spec = MountSpec::parse("type=cache,target=$HOME/.cache").unwrap();
        assert_eq!(spec.mount, None);
        let spec = MountSpec::parse("type=bind,from=builder,target=/x").unwrap();
        assert_eq!(spec.from.as_deref(), Some("builder"));
    }

    #[test]
    fn size_table() {
        let cases = [
            ("100", Some(100)),
            ("1k", Some(1024)),
            ("1.5g", Some(3 << 29)),
            ("2 MiB", Some(2 << 20)),
            ("x", None),
            ("1q", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text), want, "{text}");
        }
    }
}
