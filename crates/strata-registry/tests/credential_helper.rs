//! The `docker-credential-*` helper protocol, against a real helper executable found on
//! `PATH` (its own test binary: it changes the process environment).

use strata_registry::{Credential, DockerConfig};

fn cred(u: &str, p: &str) -> Option<Credential> {
    Some(Credential {
        username: u.into(),
        secret: p.into(),
    })
}

#[test]
fn helper_protocol() {
    // A real helper executable speaking the protocol, found through PATH.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("secrets");
    let script = format!(
        r#"#!/bin/sh
case "$1" in
  get) read server; if [ -f "{store}" ]; then cat "{store}"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  store) cat > "{store}" ;;
  erase) rm -f "{store}" ;;
esac
"#,
        store = store.display()
    );
    let helper = dir.path().join("docker-credential-strata-test");
    std::fs::write(&helper, script).expect("write helper");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // SAFETY: this test binary holds this single test, so nothing reads the environment
    // concurrently.
    unsafe { std::env::set_var("PATH", path) };

    let cfg_dir = tempfile::tempdir().expect("tempdir");
    let cfg_path = cfg_dir.path().join("config.json");
    std::fs::write(
        &cfg_path,
        r#"{"credHelpers": {"helper.example": "strata-test"}}"#,
    )
    .expect("write config");
    let mut cfg = DockerConfig::load(&cfg_path).expect("load");
    assert_eq!(cfg.credentials("helper.example").expect("get"), None);
    cfg.store(
        "helper.example",
        &Credential {
            username: "u".into(),
            secret: "s".into(),
        },
    )
    .expect("store");
    let stored = std::fs::read_to_string(&store).expect("stored");
    assert!(
        stored.contains(r#""ServerURL":"helper.example""#),
        "{stored}"
    );
    assert_eq!(
        cfg.credentials("helper.example").expect("get"),
        cred("u", "s")
    );
    // The helper is not used for other registries.
    assert_eq!(cfg.helper_for("other.example"), None);
    assert!(cfg.erase("helper.example").expect("erase"));
    assert_eq!(cfg.credentials("helper.example").expect("get"), None);
}
