//! Container ids and names: a random 64-hex id, and docker-style `adjective_surname` names
//! (the surnames of scientists and engineers) when `--name` is absent.

use std::io::Read;

use crate::error::{ContainerError, Result};

const ADJECTIVES: &[&str] = &[
    "agile", "amazing", "bold", "brave", "bright", "calm", "clever", "curious", "daring", "eager",
    "elegant", "fearless", "festive", "gentle", "happy", "humble", "jolly", "keen", "kind",
    "lucid", "merry", "modest", "nifty", "patient", "peaceful", "quiet", "quirky", "relaxed",
    "serene", "sharp", "stoic", "sweet", "tender", "trusting", "upbeat", "vibrant", "wise",
    "witty", "zealous", "zen",
];

const SURNAMES: &[&str] = &[
    "agnesi", "babbage", "bardeen", "bohr", "boole", "cerf", "curie", "darwin", "dijkstra",
    "einstein", "euler", "faraday", "fermi", "feynman", "franklin", "galileo", "gauss", "hamilton",
    "hopper", "hypatia", "kepler", "knuth", "lamarr", "liskov", "lovelace", "maxwell", "meitner",
    "newton", "noether", "pascal", "planck", "ritchie", "shannon", "tesla", "thompson", "torvalds",
    "turing", "volta", "wozniak", "yalow",
];

/// `n` random bytes from the kernel.
fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|source| ContainerError::Io {
            action: "read",
            path: "/dev/urandom".into(),
            source,
        })?;
    Ok(buf)
}

/// A new container id: 32 random bytes as 64 lowercase hex digits.
pub fn new_id() -> Result<String> {
    Ok(random_bytes::<32>()?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A random `adjective_surname`; `attempt` > 0 appends a digit, as docker does on collisions.
pub fn random_name(attempt: u32) -> Result<String> {
    let [a, b] = random_bytes::<2>()?;
    let mut name = format!(
        "{}_{}",
        ADJECTIVES[a as usize % ADJECTIVES.len()],
        SURNAMES[b as usize % SURNAMES.len()]
    );
    if attempt > 0 {
        name.push_str(&(random_bytes::<1>()?[0] % 10).to_string());
    }
    Ok(name)
}

/// docker's name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (a leading `/` is accepted and dropped).
pub fn validate_name(name: &str) -> Result<String> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let mut bytes = bare.bytes();
    let valid = bare.len() >= 2
        && bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if valid {
        Ok(bare.to_owned())
    } else {
        Err(ContainerError::InvalidName {
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex() {
        let id = new_id().unwrap();
        assert_eq!(id.len(), 64);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(id, new_id().unwrap());
    }

    #[test]
    fn random_names_are_valid_names() {
        for attempt in 0..20 {
            let name = random_name(attempt).unwrap();
            assert_eq!(validate_name(&name).unwrap(), name);
            assert!(name.contains('_'));
        }
    }

    #[test]
    fn name_rule() {
        for ok in ["extract", "/extract", "a1", "my-app.v2_x"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "-x", "_x", "a b", "a/b", "ü1"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
