//! Authentication against real servers: basic auth on an htpasswd-protected `docker-registry`,
//! and docker's bearer-token flow through a token server written for these tests.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use strata_image::reference::Reference;
use strata_registry::{PushOptions, RegistryError, push};
use strata_store::{Image, Store};
use support::{
    PASSWORD, TestRegistry, TokenServer, USER, client, empty_store, fixture_registry, pull_from,
    push_to, runtime,
};

fn reference(s: &str) -> Reference {
    Reference::parse(s).expect("reference")
}

/// A fresh registry behind a token server, and the host clients use to reach it (the front).
/// Bind the registry (`_registry`, never `_`): dropping it stops the process.
fn token_fronted_registry() -> (TestRegistry, TokenServer, String) {
    let registry = TestRegistry::start(false);
    let front = TokenServer::start(registry.port);
    let host = front.host();
    (registry, front, host)
}

/// Pulls busybox from the fixture registry into a new store and returns it with its image.
fn busybox(rt: &tokio::runtime::Runtime) -> (tempfile::TempDir, Arc<Store>, Image) {
    let (dir, store) = empty_store();
    let source = reference(&format!("{}/library/busybox:1.35", fixture_registry()));
    let pulled = pull_from(rt, &client(&[]), &store, &source).expect("pull fixture");
    let image = store.image(&pulled.manifest_digest).expect("image");
    (dir, store, image)
}

#[test]
fn basic_auth_against_htpasswd_registry() {
    let rt = runtime();
    let (_dir, store, image) = busybox(&rt);
    let registry = TestRegistry::start(true);
    let host = registry.host();
    let target = reference(&format!("{host}/private/busybox:1"));

    // Anonymous: refused, and the error says no credentials were sent.
    let err = push_to(&rt, &client(&[]), &store, &image, &target).expect_err("anonymous push");
    assert!(
        matches!(
            err,
            RegistryError::Unauthorized {
                had_credentials: false,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("{host}: authentication required")),
        "{err}"
    );

    // Wrong password: refused, the message says so and never shows the password.
    let err = push_to(
        &rt,
        &client(&[(&host, USER, "wrong-password")]),
        &store,
        &image,
        &target,
    )
    .expect_err("wrong password");
    assert!(
        matches!(
            err,
            RegistryError::Unauthorized {
                had_credentials: true,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("credentials were refused"),
        "{err}"
    );
    assert!(!format!("{err} {err:?}").contains("wrong-password"));

    // Right password: push and pull back.
    let good = client(&[(&host, USER, PASSWORD)]);
    let pushed = push_to(&rt, &good, &store, &image, &target).expect("authenticated push");
    assert_eq!(pushed.digest, image.manifest_digest);
    let (_b, fresh) = empty_store();
    let back = pull_from(&rt, &good, &fresh, &target).expect("authenticated pull");
    assert_eq!(back.manifest_digest, image.manifest_digest);
    rt.block_on(good.ping(&host))
        .expect("ping with credentials");
    let err = rt
        .block_on(client(&[(&host, USER, "nope")]).ping(&host))
        .expect_err("ping with a wrong password");
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
}

#[test]
fn bearer_tokens_are_requested_per_scope_and_cached() {
    let rt = runtime();
    let (_dir, store, image) = busybox(&rt);
    let (_registry, front, host) = token_fronted_registry();
    let authed = client(&[(&host, USER, PASSWORD)]);

    let first = reference(&format!("{host}/tok/busybox:1"));
    let pushed =
        push_to(&rt, &authed, &store, &image, &first).expect("push through the token server");
    assert_eq!(pushed.digest, image.manifest_digest);
    let requests = front.state().token_requests.lock().expect("lock").clone();
    // One token for pull+push on the repository serves every request of the push.
    assert_eq!(
        requests,
        vec![vec!["repository:tok/busybox:pull,push".to_string()]]
    );

    // A second repository: the mount needs one token covering both repositories.
    let second = reference(&format!("{host}/tok/other:1"));
    let mut mounted = Vec::new();
    let record = |e: strata_registry::Event| {
        if let strata_registry::Event::Blob {
            status: strata_registry::BlobStatus::Mounted { from },
            ..
        } = e
        {
            assert_eq!(from, "tok/busybox");
        }
    };
    rt.block_on(push(
        &authed,
        &store,
        &image,
        &second,
        &PushOptions::default(),
        &record,
    ))
    .expect("push again");
    mounted.extend(
        front
            .state()
            .token_requests
            .lock()
            .expect("lock")
            .iter()
            .skip(1)
            .cloned(),
    );
    assert!(
        mounted.contains(&vec![
            "repository:tok/other:pull,push".to_string(),
            "repository:tok/busybox:pull".to_string()
        ]),
        "no token with both scopes: {mounted:?}"
    );

    // Pull with the same client: the pull scope is new, asked once, then cached.
    let before = front.state().token_requests.lock().expect("lock").len();
    for _ in 0..2 {
        let (_b, fresh) = empty_store();
        pull_from(&rt, &authed, &fresh, &first).expect("pull through the token server");
    }
    let after = front.state().token_requests.lock().expect("lock").clone();
    assert_eq!(after.len(), before + 1, "{after:?}");
    assert_eq!(
        after.last(),
        Some(&vec!["repository:tok/busybox:pull".to_string()])
    );
}

#[test]
fn bearer_token_refusals_are_precise() {
    let rt = runtime();
    let (_dir, store, image) = busybox(&rt);
    let (_registry, front, host) = token_fronted_registry();
    let target = reference(&format!("{host}/tok/busybox:1"));

    let err = push_to(
        &rt,
        &client(&[(&host, USER, "bad")]),
        &store,
        &image,
        &target,
    )
    .expect_err("bad password");
    assert_eq!(
        err.to_string(),
        format!(
            "{host}: authentication required: UNAUTHORIZED: incorrect username or password (the credentials were refused)"
        )
    );
    assert_eq!(front.state().rejected.load(Ordering::Relaxed), 1);

    // Anonymous pulls allowed, pushes not: pull works without credentials, push does not.
    front.state().anonymous_pull.store(true, Ordering::Relaxed);
    push_to(
        &rt,
        &client(&[(&host, USER, PASSWORD)]),
        &store,
        &image,
        &target,
    )
    .expect("push with credentials");
    let anonymous = client(&[]);
    let (_b, fresh) = empty_store();
    pull_from(&rt, &anonymous, &fresh, &target).expect("anonymous pull");
    let other = reference(&format!("{host}/tok/anonymous:1"));
    let err = push_to(&rt, &anonymous, &store, &image, &other).expect_err("anonymous push");
    assert!(
        matches!(
            err,
            RegistryError::Unauthorized {
                had_credentials: false,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn blob_redirects_are_followed_without_credentials() {
    let rt = runtime();
    let (_dir, store, image) = busybox(&rt);
    let (registry, front, host) = token_fronted_registry();
    let authed = client(&[(&host, USER, PASSWORD)]);
    let target = reference(&format!("{host}/redirect/busybox:1"));
    push_to(&rt, &authed, &store, &image, &target).expect("push");

    front.redirect_blobs(registry.port);
    let (_b, fresh) = empty_store();
    let pulled = pull_from(&rt, &authed, &fresh, &target).expect("pull via redirects");
    assert_eq!(pulled.manifest_digest, image.manifest_digest);
    let seen = front.state().storage_requests.lock().expect("lock").clone();
    // Config and layer came from the storage host, and the token stayed with the registry.
    assert_eq!(seen, vec![false, false]);
}

#[test]
fn identity_tokens_use_the_oauth2_refresh_flow() {
    let rt = runtime();
    let (_dir, store, image) = busybox(&rt);
    let (_registry, front, host) = token_fronted_registry();
    front
        .state()
        .refresh_tokens
        .lock()
        .expect("lock")
        .push("refresh-123".into());

    // `<token>` as the user marks an identity token, as docker's helpers and config do.
    let oauth = client(&[(&host, "<token>", "refresh-123")]);
    let target = reference(&format!("{host}/oauth/busybox:1"));
    push_to(&rt, &oauth, &store, &image, &target).expect("push with an identity token");
    rt.block_on(oauth.ping(&host)).expect("ping");

    let stale = client(&[(&host, "<token>", "expired")]);
    let err = rt
        .block_on(stale.ping(&host))
        .expect_err("unknown refresh token");
    assert!(err.to_string().contains("invalid refresh token"), "{err}");
}

#[test]
fn login_check_against_a_token_server() {
    let rt = runtime();
    let (_registry, front, host) = token_fronted_registry();
    rt.block_on(client(&[(&host, USER, PASSWORD)]).ping(&host))
        .expect("good credentials");
    let err = rt
        .block_on(client(&[(&host, USER, "bad")]).ping(&host))
        .expect_err("bad credentials");
    assert!(
        matches!(
            err,
            RegistryError::Unauthorized {
                had_credentials: true,
                ..
            }
        ),
        "{err}"
    );
    // The check asked for a token without any repository scope, as docker login does.
    let requests = front.state().token_requests.lock().expect("lock").clone();
    assert!(requests.iter().all(Vec::is_empty), "{requests:?}");
}
