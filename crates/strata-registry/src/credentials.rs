//! Registry credentials the way docker keeps them: `$DOCKER_CONFIG/config.json` (or
//! `~/.docker/config.json`) with `auths`, `credsStore` and `credHelpers`, and the
//! `docker-credential-<name>` helper protocol (`get`/`store`/`erase`, JSON on stdio).
//!
//! Docker Hub's entry is keyed `https://index.docker.io/v1/`; every other registry by its
//! `host[:port]` (older files may carry a scheme or a `/v1/` path, which lookups ignore).
//! Unknown fields of the file survive a login/logout round trip. Secrets are wrapped so that
//! `Debug` never prints them.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

use crate::error::{RegistryError, Result};

/// The key docker uses for Docker Hub in `config.json` and with credential helpers.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A username with its secret. `username == "<token>"` marks an identity (refresh) token,
/// as the credential-helper protocol does.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub secret: String,
}

impl Credential {
    /// Whether the secret is an OAuth2 refresh token rather than a password.
    pub fn is_identity_token(&self) -> bool {
        self.username == "<token>" || self.username.is_empty() && !self.secret.is_empty()
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The key under which `registry` (a normalized registry name such as `docker.io` or
/// `localhost:5000`) is stored.
pub fn config_key(registry: &str) -> String {
    if registry == "docker.io" {
        DOCKER_HUB_KEY.to_string()
    } else {
        registry.to_string()
    }
}

/// Reduces a stored key to a registry host: drops a scheme and any path, maps Docker Hub's
/// historical names to `docker.io`.
fn key_host(key: &str) -> &str {
    let without_scheme = key.split_once("://").map_or(key, |(_, rest)| rest);
    let host = without_scheme.split('/').next().unwrap_or(without_scheme);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io",
        other => other,
    }
}

/// Where docker's config lives: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn default_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".docker/config.json"))
}

/// A docker `config.json`, kept as JSON so fields strata does not know survive a rewrite.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
    root: Map<String, Value>,
}

impl DockerConfig {
    /// Reads the file at `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self> {
        let root = match std::fs::read(path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| RegistryError::ConfigFile {
                    path: path.to_path_buf(),
                    source,
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(source) => {
                return Err(RegistryError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Ok(DockerConfig {
            path: path.to_path_buf(),
            root,
        })
    }

    /// Reads the default config (see [`default_config_path`]); none at all is an empty config.
    pub fn load_default() -> Result<Self> {
        match default_config_path() {
            Some(path) => Self::load(&path),
            None => Ok(DockerConfig {
                path: PathBuf::from("config.json"),
                root: Map::new(),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The credential helper responsible for `registry`: `credHelpers[key]`, else `credsStore`.
    pub fn helper_for(&self, registry: &str) -> Option<String> {
        let key = config_key(registry);
        let per_registry = self
            .root
            .get("credHelpers")
            .and_then(Value::as_object)
            .and_then(|helpers| {
                helpers
                    .iter()
                    .find(|(k, _)| key_host(k) == key_host(&key))
                    .and_then(|(_, v)| v.as_str())
            });
        per_registry
            .or_else(|| self.root.get("credsStore").and_then(Value::as_str))
            .filter(|name| !name.is_empty())
            .map(str::to_string)
    }

    /// Credentials for `registry`, in docker's order: its helper, then the `auths` entry.
    pub fn credentials(&self, registry: &str) -> Result<Option<Credential>> {
        if let Some(helper) = self.helper_for(registry)
            && let Some(found) = helper_get(&helper, &config_key(registry))?
        {
            return Ok(Some(found));
        }
        self.auths_entry(registry)
    }

    fn auths_entry(&self, registry: &str) -> Result<Option<Credential>> {
        let Some(auths) = self.root.get("auths").and_then(Value::as_object) else {
            return Ok(None);
        };
        let key = config_key(registry);
        let entry = auths.get(&key).or_else(|| {
            auths
                .iter()
                .find(|(k, _)| key_host(k) == key_host(&key))
                .map(|(_, v)| v)
        });
        let Some(entry) = entry.and_then(Value::as_object) else {
            return Ok(None);
        };
        let malformed = || RegistryError::ConfigAuthEntry {
            path: self.path.clone(),
            registry: registry.to_string(),
        };
        if let Some(token) = entry
            .get("identitytoken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            return Ok(Some(Credential {
                username: "<token>".into(),
                secret: token.to_string(),
            }));
        }
        if let Some(auth) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            let decoded = BASE64.decode(auth.trim()).map_err(|_| malformed())?;
            let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
            let (username, password) = decoded.split_once(':').ok_or_else(malformed)?;
            return Ok(Some(Credential {
                username: username.to_string(),
                secret: password.to_string(),
            }));
        }
        let username = entry.get("username").and_then(Value::as_str);
        let password = entry.get("password").and_then(Value::as_str);
        Ok(match (username, password) {
            (Some(u), Some(p)) if !u.is_empty() => Some(Credential {
                username: u.into(),
                secret: p.into(),
            }),
            _ => None,
        })
    }

    /// Records a login: in the registry's helper when one is configured (as docker does),
    /// otherwise as an `auths` entry. Call [`DockerConfig::save`] afterwards.
    pub fn store(&mut self, registry: &str, credential: &Credential) -> Result<()> {
        let key = config_key(registry);
        if let Some(helper) = self.helper_for(registry) {
            helper_store(&helper, &key, credential)?;
            // Docker leaves an empty entry so `auths` lists the registry as logged in.
            self.with_auths(|auths| auths.insert(key, Value::Object(Map::new())));
            return Ok(());
        }
        let encoded = BASE64.encode(format!("{}:{}", credential.username, credential.secret));
        let mut entry = Map::new();
        entry.insert("auth".into(), Value::String(encoded));
        self.with_auths(|auths| {
            auths.retain(|k, _| key_host(k) != key_host(&key));
            auths.insert(key, Value::Object(entry));
        });
        Ok(())
    }

    /// Forgets `registry`: erases it from its helper and drops every `auths` key naming it.
    /// Returns whether anything was removed.
    pub fn erase(&mut self, registry: &str) -> Result<bool> {
        let key = config_key(registry);
        if let Some(helper) = self.helper_for(registry) {
            helper_erase(&helper, &key)?;
        }
        Ok(self.with_auths(|auths| {
            let before = auths.len();
            auths.retain(|k, _| key_host(k) != key_host(&key));
            auths.len() != before
        }))
    }

    /// Runs `edit` on the `auths` object, creating it (or replacing a non-object) first.
    fn with_auths<R>(&mut self, edit: impl FnOnce(&mut Map<String, Value>) -> R) -> R {
        let mut auths = match self.root.remove("auths") {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        };
        let result = edit(&mut auths);
        self.root.insert("auths".into(), Value::Object(auths));
        result
    }

    /// Writes the file atomically (temporary file + rename) with mode 0600, creating its
    /// directory (0700) when needed.
    pub fn save(&self) -> Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RegistryError::Io { path, source }
        };
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        let mut bytes =
            serde_json::to_vec_pretty(&self.root).map_err(|source| RegistryError::ConfigFile {
                path: self.path.clone(),
                source,
            })?;
        bytes.push(b'\n');
        let tmp = dir.join(format!(".config.json.{}.tmp", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(io(&tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(io(&self.path))
    }
}

#[derive(serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct HelperCredential {
    #[serde(rename = "ServerURL", default)]
    server_url: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    secret: String,
}

/// Runs `docker-credential-<helper> <verb>` with `input` on stdin; returns stdout, or the
/// helper's own message on failure.
fn run_helper(helper: &str, verb: &str, input: &[u8]) -> Result<(bool, Vec<u8>)> {
    let program = format!("docker-credential-{helper}");
    let fail = |detail: String| RegistryError::CredentialHelper {
        helper: helper.to_string(),
        detail,
    };
    let mut child = Command::new(&program)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .map_err(|e| fail(format!("writing to {program}: {e}")))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| fail(format!("waiting for {program}: {e}")))?;
    if output.status.success() {
        return Ok((true, output.stdout));
    }
    // Helpers print their error on stdout (the protocol) or stderr; neither contains the
    // secret because strata only sends it to `store`.
    let mut message = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if message.is_empty() {
        message = String::from_utf8_lossy(&output.stderr).trim().to_string();
    }
    Ok((false, message.into_bytes()))
}

fn helper_get(helper: &str, server: &str) -> Result<Option<Credential>> {
    let (ok, out) = run_helper(helper, "get", server.as_bytes())?;
    if !ok {
        let message = String::from_utf8_lossy(&out).into_owned();
        // The protocol's "not found" answer means: no credentials, not an error.
        if message.contains("credentials not found") {
            return Ok(None);
        }
        return Err(RegistryError::CredentialHelper {
            helper: helper.into(),
            detail: message,
        });
    }
    let parsed: HelperCredential =
        serde_json::from_slice(&out).map_err(|e| RegistryError::CredentialHelper {
            helper: helper.into(),
            detail: format!("get returned invalid JSON: {e}"),
        })?;
    if parsed.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credential {
        username: parsed.username,
        secret: parsed.secret,
    }))
}

fn helper_store(helper: &str, server: &str, credential: &Credential) -> Result<()> {
    let input = serde_json::to_vec(&HelperCredential {
        server_url: server.to_string(),
        username: credential.username.clone(),
        secret: credential.secret.clone(),
    })
    .map_err(|e| RegistryError::CredentialHelper {
        helper: helper.into(),
        detail: e.to_string(),
    })?;
    let (ok, out) = run_helper(helper, "store", &input)?;
    if ok {
        Ok(())
    } else {
        Err(RegistryError::CredentialHelper {
            helper: helper.into(),
            detail: String::from_utf8_lossy(&out).into_owned(),
        })
    }
}

fn helper_erase(helper: &str, server: &str) -> Result<()> {
    let (ok, out) = run_helper(helper, "erase", server.as_bytes())?;
    let message = String::from_utf8_lossy(&out).into_owned();
    if ok || message.contains("credentials not found") {
        Ok(())
    } else {
        Err(RegistryError::CredentialHelper {
            helper: helper.into(),
            detail: message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> (tempfile::TempDir, DockerConfig) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        std::fs::write(&path, json).expect("write config");
        let cfg = DockerConfig::load(&path).expect("load");
        (dir, cfg)
    }

    fn cred(u: &str, p: &str) -> Option<Credential> {
        Some(Credential {
            username: u.into(),
            secret: p.into(),
        })
    }

    #[test]
    fn lookup_by_registry() {
        // "strata:s3cret" and "hub:pw" in base64.
        let (_dir, cfg) = config(
            r#"{"auths": {
                "localhost:5001": {"auth": "c3RyYXRhOnMzY3JldA=="},
                "https://index.docker.io/v1/": {"auth": "aHViOnB3"},
                "http://old.example:8443/v1/": {"username": "u", "password": "p"},
                "tok.example": {"identitytoken": "refresh-me"}
            }}"#,
        );
        let cases = [
            ("localhost:5001", cred("strata", "s3cret")),
            ("docker.io", cred("hub", "pw")),
            ("old.example:8443", cred("u", "p")),
            ("tok.example", cred("<token>", "refresh-me")),
            ("localhost:5000", None),
        ];
        for (registry, expected) in cases {
            assert_eq!(
                cfg.credentials(registry).expect("lookup"),
                expected,
                "{registry}"
            );
        }
    }

    #[test]
    fn malformed_auth_entry_names_the_registry() {
        let (_dir, cfg) = config(r#"{"auths": {"r.example": {"auth": "bm8tY29sb24="}}}"#);
        let err = cfg.credentials("r.example").expect_err("no colon");
        assert!(err.to_string().contains("r.example"), "{err}");
    }

    #[test]
    fn store_and_erase_keep_unknown_fields() {
        let (_dir, mut cfg) = config(
            r#"{"psFormat": "table", "auths": {"http://localhost:5001": {"auth": "eDp5"}}}"#,
        );
        cfg.store(
            "localhost:5001",
            &Credential {
                username: "strata".into(),
                secret: "strata-test".into(),
            },
        )
        .expect("store");
        cfg.store(
            "docker.io",
            &Credential {
                username: "a".into(),
                secret: "b".into(),
            },
        )
        .expect("store");
        cfg.save().expect("save");
        let text = std::fs::read_to_string(cfg.path()).expect("read");
        let value: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(value["psFormat"], "table");
        // The old scheme-prefixed key for the same host was replaced, not duplicated.
        let auths = value["auths"].as_object().expect("auths");
        let mut keys: Vec<&str> = auths.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["https://index.docker.io/v1/", "localhost:5001"]);
        assert_eq!(
            auths["localhost:5001"]["auth"],
            BASE64.encode("strata:strata-test")
        );

        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(cfg.path())
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let mut reloaded = DockerConfig::load(cfg.path()).expect("reload");
        assert_eq!(
            reloaded.credentials("localhost:5001").expect("lookup"),
            cred("strata", "strata-test")
        );
        assert!(reloaded.erase("localhost:5001").expect("erase"));
        assert!(!reloaded.erase("localhost:5001").expect("erase again"));
        assert_eq!(
            reloaded.credentials("localhost:5001").expect("lookup"),
            None
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = Credential {
            username: "u".into(),
            secret: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
