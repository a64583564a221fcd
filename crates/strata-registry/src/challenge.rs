//! `WWW-Authenticate` challenges (RFC 7235) as registries send them on a 401.
//!
//! A registry names its scheme (`Basic` or `Bearer`) and, for bearer tokens, where to get one:
//! `Bearer realm="https://auth.example/token",service="registry",scope="repository:x:pull"`.
//! Parsing is pure so every quoting corner is unit tested.

use std::collections::BTreeMap;

/// One authentication challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP basic authentication: send `Authorization: Basic base64(user:password)`.
    Basic,
    /// Token authentication: fetch a token from `realm` for `service` and the scopes needed.
    Bearer {
        realm: String,
        service: Option<String>,
        /// The scope the registry said the failed request needs (may be absent).
        scope: Option<String>,
    },
}

/// Parses the value of a `WWW-Authenticate` header; a bearer challenge wins over basic when
/// a registry offers both. `None` when no challenge with a known scheme is present (or a
/// bearer challenge has no realm, which leaves nowhere to ask for a token).
pub fn parse(header: &str) -> Option<Challenge> {
    let challenges = parse_all(header);
    let bearer = challenges
        .iter()
        .find(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"));
    if let Some((_, params)) = bearer {
        let realm = params.get("realm")?.clone();
        return Some(Challenge::Bearer {
            realm,
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        });
    }
    challenges
        .iter()
        .any(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .then_some(Challenge::Basic)
}

/// Splits a header into `(scheme, params)` pairs. Parameter names are lowercased; values may
/// be tokens or quoted strings with backslash escapes.
fn parse_all(header: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let mut out: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    let mut rest = header.trim_start();
    while !rest.is_empty() {
        // A token followed by `=` is a parameter of the current challenge; a token followed
        // by whitespace (or the end) starts a new challenge.
        let token_len = rest
            .find(|c: char| c == '=' || c == ',' || c.is_whitespace())
            .unwrap_or(rest.len());
        let token = &rest[..token_len];
        let after = rest[token_len..].trim_start();
        if token.is_empty() {
            // Stray comma or `=`: skip one character.
            rest = rest[rest.chars().next().map_or(1, char::len_utf8)..].trim_start();
            continue;
        }
        if let Some(value_part) = after.strip_prefix('=')
            && !value_part.starts_with('=')
            && let Some((_, params)) = out.last_mut()
        {
            let value_part = value_part.trim_start();
            let (value, remaining) = parse_value(value_part);
            params.insert(token.to_ascii_lowercase(), value);
            rest = remaining.trim_start().trim_start_matches(',').trim_start();
            continue;
        }
        out.push((token.to_string(), BTreeMap::new()));
        rest = after.trim_start_matches(',').trim_start();
    }
    out
}

/// Reads a token or a quoted string; returns the value and what follows it.
fn parse_value(input: &str) -> (String, &str) {
    if let Some(quoted) = input.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '"' => return (value, &quoted[i + 1..]),
                _ => value.push(c),
            }
        }
        // Unterminated quote: take everything.
        return (value, "");
    }
    let end = input
        .find(|c: char| c == ',' || c.is_whitespace())
        .unwrap_or(input.len());
    (input[..end].to_string(), &input[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Option<Challenge> {
        Some(Challenge::Bearer {
            realm: realm.into(),
            service: service.map(Into::into),
            scope: scope.map(Into::into),
        })
    }

    #[test]
    fn challenges() {
        let cases: &[(&str, Option<Challenge>)] = &[
            (
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:library/alpine:pull""#,
                bearer(
                    "https://auth.example/token",
                    Some("registry.example"),
                    Some("repository:library/alpine:pull"),
                ),
            ),
            (
                // Scopes contain commas inside quotes: they must not split the parameter.
                r#"Bearer realm="http://127.0.0.1:1/token",service="svc",scope="repository:a/b:pull,push""#,
                bearer(
                    "http://127.0.0.1:1/token",
                    Some("svc"),
                    Some("repository:a/b:pull,push"),
                ),
            ),
            (
                r#"bearer realm=http://x/token"#,
                bearer("http://x/token", None, None),
            ),
            (
                r#"Bearer realm="a\"b", service = "s""#,
                bearer("a\"b", Some("s"), None),
            ),
            (r#"Basic realm="Registry Realm""#, Some(Challenge::Basic)),
            (r#"Basic"#, Some(Challenge::Basic)),
            (
                r#"Basic realm="x", Bearer realm="https://t/token",service="s""#,
                bearer("https://t/token", Some("s"), None),
            ),
            (r#"Bearer service="no realm""#, None),
            (r#"Negotiate abc"#, None),
            ("", None),
            (
                r#"Bearer realm="unterminated"#,
                bearer("unterminated", None, None),
            ),
        ];
        for (header, expected) in cases {
            assert_eq!(&parse(header), expected, "header: {header}");
        }
    }
}
