//! Table of references as the docker CLI normalizes them (input → full form, familiar form) and
//! of the inputs it refuses (input → error line).

use super::*;

const H: &str = "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa";

/// `(input, full form, familiar form)`; `@D` in a column stands for `@sha256:<H>`.
const VALID: &[(&str, &str, &str)] = &[
    (
        "busybox",
        "docker.io/library/busybox:latest",
        "busybox:latest",
    ),
    (
        "busybox:1.35",
        "docker.io/library/busybox:1.35",
        "busybox:1.35",
    ),
    (
        "busybox:latest",
        "docker.io/library/busybox:latest",
        "busybox:latest",
    ),
    (
        "library/busybox",
        "docker.io/library/busybox:latest",
        "busybox:latest",
    ),
    (
        "docker.io/busybox",
        "docker.io/library/busybox:latest",
        "busybox:latest",
    ),
    (
        "docker.io/library/busybox",
        "docker.io/library/busybox:latest",
        "busybox:latest",
    ),
    (
        "index.docker.io/busybox",
        "docker.io/library/busybox:latest",
        "busybox:latest",
    ),
    (
        "index.docker.io/library/busybox:1",
        "docker.io/library/busybox:1",
        "busybox:1",
    ),
    (
        "index.docker.io/user/app",
        "docker.io/user/app:latest",
        "user/app:latest",
    ),
    ("user/app", "docker.io/user/app:latest", "user/app:latest"),
    (
        "user/app:v1.2.3",
        "docker.io/user/app:v1.2.3",
        "user/app:v1.2.3",
    ),
    (
        "docker.io/user/app",
        "docker.io/user/app:latest",
        "user/app:latest",
    ),
    (
        "library/a/b",
        "docker.io/library/a/b:latest",
        "library/a/b:latest",
    ),
    ("a/b/c/d", "docker.io/a/b/c/d:latest", "a/b/c/d:latest"),
    ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
    (
        "localhost:5000/x",
        "localhost:5000/x:latest",
        "localhost:5000/x:latest",
    ),
    (
        "localhost:5000/x:1",
        "localhost:5000/x:1",
        "localhost:5000/x:1",
    ),
    (
        "localhost:5000/library/busybox:1.35",
        "localhost:5000/library/busybox:1.35",
        "localhost:5000/library/busybox:1.35",
    ),
    (
        "127.0.0.1:5000/a/b:c",
        "127.0.0.1:5000/a/b:c",
        "127.0.0.1:5000/a/b:c",
    ),
    (
        "example.com/app",
        "example.com/app:latest",
        "example.com/app:latest",
    ),
    (
        "example.com:443/app",
        "example.com:443/app:latest",
        "example.com:443/app:latest",
    ),
    (
        "sub.example.com/team/app:tag",
        "sub.example.com/team/app:tag",
        "sub.example.com/team/app:tag",
    ),
    (
        "my-registry/app",
        "docker.io/my-registry/app:latest",
        "my-registry/app:latest",
    ),
    (
        "registry:5000/app",
        "registry:5000/app:latest",
        "registry:5000/app:latest",
    ),
    ("Registry/app", "Registry/app:latest", "Registry/app:latest"),
    (
        "EXAMPLE.COM/app",
        "EXAMPLE.COM/app:latest",
        "EXAMPLE.COM/app:latest",
    ),
    ("[::1]/app", "[::1]/app:latest", "[::1]/app:latest"),
    (
        "[::1]:5000/app:v1",
        "[::1]:5000/app:v1",
        "[::1]:5000/app:v1",
    ),
    (
        "[2001:db8::1]:5000/a/b",
        "[2001:db8::1]:5000/a/b:latest",
        "[2001:db8::1]:5000/a/b:latest",
    ),
    // A bare "localhost" is a name, not a registry (docker's documented FIXME).
    (
        "localhost",
        "docker.io/library/localhost:latest",
        "localhost:latest",
    ),
    (
        "localhost:5000",
        "docker.io/library/localhost:5000",
        "localhost:5000",
    ),
    ("a", "docker.io/library/a:latest", "a:latest"),
    ("0", "docker.io/library/0:latest", "0:latest"),
    ("a.b", "docker.io/library/a.b:latest", "a.b:latest"),
    ("a_b", "docker.io/library/a_b:latest", "a_b:latest"),
    ("a__b", "docker.io/library/a__b:latest", "a__b:latest"),
    ("a---b", "docker.io/library/a---b:latest", "a---b:latest"),
    (
        "foo/a.b_c__d-e--f",
        "docker.io/foo/a.b_c__d-e--f:latest",
        "foo/a.b_c__d-e--f:latest",
    ),
    (
        "busybox:UPPER_case.tag-1",
        "docker.io/library/busybox:UPPER_case.tag-1",
        "busybox:UPPER_case.tag-1",
    ),
    ("busybox:_x", "docker.io/library/busybox:_x", "busybox:_x"),
    ("busybox@D", "docker.io/library/busybox@D", "busybox@D"),
    (
        "busybox:1.35@D",
        "docker.io/library/busybox:1.35@D",
        "busybox:1.35@D",
    ),
    (
        "localhost:5000/x@D",
        "localhost:5000/x@D",
        "localhost:5000/x@D",
    ),
    (
        "localhost:5000/x:t@D",
        "localhost:5000/x:t@D",
        "localhost:5000/x:t@D",
    ),
    ("user/app@D", "docker.io/user/app@D", "user/app@D"),
    // 63 and 65 hex characters are names, only exactly 64 is an id.
    (
        "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5a",
        "docker.io/library/7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5a:latest",
        "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5a:latest",
    ),
    (
        "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa:tag",
        "docker.io/library/7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa:tag",
        "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa:tag",
    ),
];

/// `(input, error line)`.
const INVALID: &[(&str, &str)] = &[
    (
        "",
        "invalid reference format: repository name must have at least one component",
    ),
    (
        "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa",
        "invalid repository name (7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa), cannot specify 64-byte hexadecimal strings",
    ),
    (
        "Busybox",
        "invalid reference format: repository name (library/Busybox) must be lowercase",
    ),
    (
        "busyBox:1",
        "invalid reference format: repository name (library/busyBox) must be lowercase",
    ),
    (
        "user/App",
        "invalid reference format: repository name (user/App) must be lowercase",
    ),
    (
        "localhost:5000/Foo",
        "invalid reference format: repository name (Foo) must be lowercase",
    ),
    (
        "Registry/App",
        "invalid reference format: repository name (App) must be lowercase",
    ),
    (
        "Foo_x/bar",
        "invalid reference format: repository name must be lowercase",
    ),
    (
        "busybox:",
        "invalid reference format: invalid tag \"\" (up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-')",
    ),
    (
        "busybox:-x",
        "invalid reference format: invalid tag \"-x\" (up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-')",
    ),
    (
        "busybox:.x",
        "invalid reference format: invalid tag \".x\" (up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-')",
    ),
    (
        "busybox:a+b",
        "invalid reference format: invalid tag \"a+b\" (up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-')",
    ),
    (
        "busybox::1",
        "invalid reference format: invalid repository path component \"busybox:\" in \"docker.io/library/busybox::1\" (lowercase letters and digits, separated by '.', '_', '__' or '-')",
    ),
    (
        "-busybox",
        "invalid reference format: invalid repository path component \"-busybox\" in \"docker.io/library/-busybox\" (lowercase letters and digits, separated by '.', '_', '__' or '-')",
    ),
    (
        "busybox-",
        "invalid reference format: invalid repository path component \"busybox-\" in \"docker.io/library/busybox-\" (lowercase letters and digits, separated by '.', '_', '__' or '-')",
    ),
    (
        "a..b",
        "invalid reference format: invalid repository path component \"a..b\" in \"docker.io/library/a..b\" (lowercase letters and digits, separated by '.', '_', '__' or '-')",
    ),
    (
        "a___b",
        "invalid reference format: invalid repository path component \"a___b\" in \"docker.io/library/a___b\" (lowercase letters and digits, separated by '.', '_', '__' or '-')",
    ),
    (
        "a/",
        "invalid reference format: invalid repository path component \"\" in \"docker.io/a/\" (lowercase letters and digits, separated by '.', '_', '__' or '-')",
    ),
    (
        "a//b",
        "invalid reference format: invalid repository path component \"\" in \"docker.io/a//b\" (lowercase letters and digits, separated by '.', '_', '__' or '-')",
    ),
    (
        "/a",
        "invalid reference format: invalid repository path component \"\" in \"docker.io//a\" (lowercase letters and digits, separated by '.', '_', '__' or '-')",
    ),
    (
        "a b",
        "invalid reference format: invalid repository path component \"a b\" in \"docker.io/library/a b\" (lowercase letters and digits, separated by '.', '_', '__' or '-')",
    ),
    (
        "localhost:/x",
        "invalid reference format: invalid registry host \"localhost:\" (a host name, IPv4 or [IPv6] address, optionally with :port)",
    ),
    (
        "localhost:port/x",
        "invalid reference format: invalid registry host \"localhost:port\" (a host name, IPv4 or [IPv6] address, optionally with :port)",
    ),
    (
        "-example.com/x",
        "invalid reference format: invalid registry host \"-example.com\" (a host name, IPv4 or [IPv6] address, optionally with :port)",
    ),
    (
        "example..com/x",
        "invalid reference format: invalid registry host \"example..com\" (a host name, IPv4 or [IPv6] address, optionally with :port)",
    ),
    (
        "[::1/x",
        "invalid reference format: invalid registry host \"[::1\" (a host name, IPv4 or [IPv6] address, optionally with :port)",
    ),
    (
        "[zz::1]/x",
        "invalid reference format: invalid registry host \"[zz::1]\" (a host name, IPv4 or [IPv6] address, optionally with :port)",
    ),
    (
        "busybox@sha256:abc",
        "invalid reference format: invalid digest \"sha256:abc\": invalid checksum digest length",
    ),
    (
        "busybox@sha256:7CC4B5AEFD1D0CADF8D97D4350462BA51C694EBCA145B08D7D41B41ACC8DB5AA",
        "invalid reference format: invalid digest \"sha256:7CC4B5AEFD1D0CADF8D97D4350462BA51C694EBCA145B08D7D41B41ACC8DB5AA\": invalid checksum digest format",
    ),
    (
        "busybox@sha256",
        "invalid reference format: invalid digest \"sha256\": invalid checksum digest format",
    ),
    (
        "busybox@sha256:",
        "invalid reference format: invalid digest \"sha256:\": invalid checksum digest format",
    ),
    (
        "busybox@7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa",
        "invalid reference format: invalid digest \"7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa\": invalid checksum digest format",
    ),
    (
        "busybox@sha512:7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa",
        "invalid reference format: invalid digest \"sha512:7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa\": unsupported digest algorithm (only sha256 is supported)",
    ),
    (
        "busybox@@sha256:7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa",
        "invalid reference format: invalid digest \"@sha256:7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa\": invalid checksum digest format",
    ),
];

fn expand(s: &str) -> String {
    s.replace("@D", &format!("@sha256:{H}"))
}

#[test]
fn valid_references_normalize_like_docker() {
    assert!(VALID.len() + INVALID.len() >= 60);
    for (input, full, familiar) in VALID {
        let input = expand(input);
        let r = Reference::parse(&input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(r.to_string(), expand(full), "full form of {input:?}");
        assert_eq!(r.familiar(), expand(familiar), "familiar form of {input:?}");
        // The full form and the familiar form are fixed points of normalization.
        assert_eq!(Reference::parse(&r.to_string()).unwrap(), r, "{input:?}");
        assert_eq!(Reference::parse(&r.familiar()).unwrap(), r, "{input:?}");
    }
}

#[test]
fn invalid_references_name_the_problem() {
    for (input, message) in INVALID {
        match Reference::parse(input) {
            Ok(r) => panic!("{input:?} parsed as {r}"),
            Err(e) => assert_eq!(e.to_string(), *message, "error for {input:?}"),
        }
    }
}

#[test]
fn long_names_and_tags() {
    let component = "a".repeat(REPOSITORY_MAX_LEN - "library/".len());
    assert!(Reference::parse(&component).is_ok());
    let too_long = format!("{component}b");
    assert_eq!(
        Reference::parse(&too_long).unwrap_err(),
        ReferenceError::NameTooLong { length: 256 }
    );
    let tag = "t".repeat(TAG_MAX_LEN);
    assert!(Reference::parse(&format!("busybox:{tag}")).is_ok());
    assert!(matches!(
        Reference::parse(&format!("busybox:{tag}t")),
        Err(ReferenceError::InvalidTag { .. })
    ));
}

#[test]
fn accessors() {
    let r = Reference::parse(&format!("localhost:5000/team/app:v1@sha256:{H}")).unwrap();
    assert_eq!(r.registry(), "localhost:5000");
    assert_eq!(r.repository(), "team/app");
    assert_eq!(r.tag(), Some("v1"));
    assert_eq!(r.digest().map(|d| d.hex()), Some(H.to_string()));
    assert_eq!(r.name(), "localhost:5000/team/app");
    assert_eq!(r.familiar_name(), "localhost:5000/team/app");
    assert_eq!(
        r.without_digest().unwrap().to_string(),
        "localhost:5000/team/app:v1"
    );

    let b = Reference::parse("busybox").unwrap();
    assert_eq!(b.familiar_name(), "busybox");
    assert_eq!(b.with_tag("1.36").unwrap().familiar(), "busybox:1.36");
    assert!(matches!(
        b.with_tag("bad tag"),
        Err(ReferenceError::InvalidTag { .. })
    ));
    let d = Digest::of(b"x");
    assert_eq!(
        b.with_digest(d).to_string(),
        format!("docker.io/library/busybox:latest@{d}")
    );
}

#[test]
fn parse_normalized_keeps_a_bare_name_untagged() {
    let r = Reference::parse_normalized("busybox").unwrap();
    assert_eq!(r.tag(), None);
    assert_eq!(r.to_string(), "docker.io/library/busybox");
    assert_eq!(r.familiar(), "busybox");
}

#[test]
fn serde_round_trip_uses_the_full_form() {
    let r = Reference::parse("busybox:1.35").unwrap();
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(json, "\"docker.io/library/busybox:1.35\"");
    assert_eq!(serde_json::from_str::<Reference>(&json).unwrap(), r);
}

#[test]
fn familiar_form_of_a_hub_repository_named_like_a_registry_is_ambiguous() {
    // Docker prints `localhost/x`, which parses back as the registry `localhost`: the familiar
    // form is for display only, never re-parse it as an identity.
    let r = Reference::parse("docker.io/localhost/x").unwrap();
    assert_eq!(r.to_string(), "docker.io/localhost/x:latest");
    assert_eq!(r.familiar(), "localhost/x:latest");
    assert_eq!(
        Reference::parse(&r.familiar()).unwrap().registry(),
        "localhost"
    );
}
