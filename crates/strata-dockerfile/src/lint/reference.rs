//! Whether a string is a valid image reference, as docker's reference parser judges it (the
//! check behind `InvalidDefaultArgInFrom`). Only validity matters here; `strata-image` owns
//! parsing references for real.
//!
//! Grammar: `[domain/]path[:tag][@digest]` where the domain is a host name (or bracketed IPv6)
//! with an optional port, path components are lowercase alphanumerics joined by `.`, `_`, `__`
//! or dashes, a tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}` and a digest `algorithm:hex(32+)`. A
//! first component counts as a domain when it contains `.` or `:`, is `localhost`, or has
//! uppercase letters; the rest of the name must be lowercase.

/// Whether `reference` parses as a normalized docker reference.
pub(crate) fn is_valid_reference(reference: &str) -> bool {
    if reference.is_empty() {
        return false;
    }
    let (rest, digest) = match reference.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (reference, None),
    };
    if let Some(digest) = digest
        && !is_digest(digest)
    {
        return false;
    }
    // a tag follows the last colon after the last slash
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag
        && !is_tag(tag)
    {
        return false;
    }
    let (domain, path) = match name.split_once('/') {
        Some((first, path))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (Some(first), path)
        }
        _ => (None, name),
    };
    if let Some(domain) = domain
        && !is_domain(domain)
    {
        return false;
    }
    // docker refuses a bare 64-hex name: it would read as an image id
    if domain.is_none() && path.len() == 64 && path.chars().all(|c| c.is_ascii_hexdigit()) {
        return false;
    }
    !path.is_empty() && name.len() <= 255 && path.split('/').all(is_path_component)
}

fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    if bytes.is_empty() || !is_lower_alnum(bytes[0]) || !is_lower_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    // separators: `.`, `_`, `__` or any run of `-`
    let mut i = 0;
    while i < bytes.len() {
        if is_lower_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_lower_alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let valid = separator == "."
            || separator == "_"
            || separator == "__"
            || separator.bytes().all(|b| b == b'-');
        if !valid {
            return false;
        }
    }
    true
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn is_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        if inside.is_empty()
            || !inside
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return false;
        }
        match after {
            "" => return true,
            _ => (None, after.strip_prefix(':')),
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(domain), None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    if domain.starts_with('[') && port.is_none() {
        return false;
    }
    host.is_none_or(|host| {
        !host.is_empty()
            && host.split('.').all(|label| {
                let b = label.as_bytes();
                !b.is_empty()
                    && b[0].is_ascii_alphanumeric()
                    && b[b.len() - 1].is_ascii_alphanumeric()
                    && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            })
    })
}

fn is_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn is_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm
            .split(['+', '.', '_', '-'])
            .all(|part| !part.is_empty() && part.bytes().all(is_lower_alnum));
    algorithm_ok && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::is_valid_reference;

    #[test]
    fn references_docker_accepts() {
        for reference in [
            "busybox",
            "busybox:1.35",
            "library/busybox:latest",
            "localhost:5000/library/busybox:1.35",
            "127.0.0.1:5000/a/b-c__d.e:v1.2_3-rc",
            "scratch",
            "my-registry.local/team/app",
            "Registry.Local/app",
            "[::1]:5000/app",
            "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "app:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(
                is_valid_reference(reference),
                "{reference:?} should be valid"
            );
        }
    }

    #[test]
    fn references_docker_refuses() {
        for reference in [
            "",
            ":",
            "busybox:",
            "Busybox",
            "team/App",
            "a//b",
            "-a",
            "a-",
            "a...b",
            "a:b:c",
            "busybox:-tag",
            "app@sha256:short",
            "app@",
            "localhost:/app",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "with space",
        ] {
            assert!(
                !is_valid_reference(reference),
                "{reference:?} should be invalid"
            );
        }
    }
}
