//! The engine end to end: real builds with RUN (runc) on overlay snapshots of the busybox
//! fixture, loaded into a temporary store. Checks are made from inside the image (`RUN test`)
//! or by inspecting the stored config. Needs root, runc and the fixtures.

mod common;

use common::{BASE, Env, cached, env, logs};
use std::sync::{Arc, Mutex};
use strata_build::progress::{Event, ProgressSink};
use strata_build::solve::{self, BuildError, BuildOutcome};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_copy_env_workdir_and_a_fully_cached_rebuild() {
    let env = env();
    env.file("hello.txt", "hello\n");
    env.file("dir/a", "A");
    let dockerfile = format!(
        "{BASE}ENV GREETING=hi\nWORKDIR /app\nCOPY hello.txt dir ./\nRUN test \"$(cat /app/hello.txt)\" = hello && test \"$(cat /app/a)\" = A && test \"$GREETING\" = hi && test \"$(pwd)\" = /app\nRUN echo built > /app/out && echo visible-output\nCMD [\"cat\", \"/app/out\"]\n"
    );
    let (result, events) = env.build(env.options(&dockerfile)).await;
    let outcome = result.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        logs(&events).iter().any(|l| l == "visible-output"),
        "RUN output is streamed: {events:?}"
    );
    assert_eq!(cached(&events), 0);
    let config = env.config(&outcome);
    let c = config.oci.config().clone().unwrap();
    assert_eq!(c.working_dir().as_deref(), Some("/app"));
    assert_eq!(c.cmd().clone().unwrap(), vec!["cat", "/app/out"]);
    assert!(
        c.env()
            .clone()
            .unwrap()
            .contains(&"GREETING=hi".to_string())
    );
    let history: Vec<String> = config
        .history()
        .iter()
        .filter_map(|h| h.created_by().clone())
        .collect();
    assert!(
        history.contains(&"ENV GREETING=hi".to_string()),
        "{history:?}"
    );
    assert!(
        history.contains(&"COPY hello.txt dir ./ # buildkit".to_string()),
        "{history:?}"
    );
    assert!(
        history
            .iter()
            .any(|h| h.starts_with("RUN /bin/sh -c echo built > /app/out")
                && h.ends_with("# buildkit")),
        "{history:?}"
    );
    assert_eq!(
        config.history().last().unwrap().created_by().as_deref(),
        Some("CMD [\"cat\" \"/app/out\"]")
    );

    // Nothing changed: every filesystem step is a cache hit and the image is identical.
    let (again, events) = env.build(env.options(&dockerfile)).await;
    let again = again.unwrap();
    assert_eq!(
        cached(&events),
        4,
        "WORKDIR, COPY and two RUNs are cached: {events:?}"
    );
    assert!(logs(&events).is_empty(), "a cached RUN does not run");
    assert_eq!(
        env.config(&again).diff_ids().unwrap(),
        config.diff_ids().unwrap()
    );
    assert_eq!(
        again.config_digest, outcome.config_digest,
        "a fully cached rebuild is the same image"
    );

    // One context file changes: COPY and what follows rebuild; WORKDIR stays cached.
    env.file("dir/a", "A");
    env.file("hello.txt", "hello\n");
    let (same, events) = env.build(env.options(&dockerfile)).await;
    same.unwrap();
    assert_eq!(
        cached(&events),
        4,
        "rewriting identical content keeps the cache (no mtimes in keys)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_misses_on_content_build_arg_and_instruction_changes() {
    let env = env();
    env.file("f", "one");
    let dockerfile = format!("{BASE}ARG V=default\nCOPY f /f\nRUN echo \"$V\" > /v\n");
    env.build(env.options(&dockerfile)).await.0.unwrap();

    env.file("f", "two");
    let (r, events) = env.build(env.options(&dockerfile)).await;
    r.unwrap();
    assert_eq!(cached(&events), 0, "changed file: COPY and RUN rebuild");

    let mut opts = env.options(&dockerfile);
    opts.build_args.set("V", "other");
    let (r, events) = env.build(opts).await;
    r.unwrap();
    assert_eq!(
        cached(&events),
        1,
        "changed build arg: COPY cached, RUN rebuilt"
    );

    let changed = format!("{BASE}ARG V=default\nCOPY f /f\nRUN echo \"$V\" > /v && true\n");
    let (r, events) = env.build(env.options(&changed)).await;
    r.unwrap();
    assert_eq!(cached(&events), 1, "changed instruction: only it rebuilds");

    let mut opts = env.options(&dockerfile);
    opts.no_cache = true;
    let (r, events) = env.build(opts).await;
    r.unwrap();
    assert_eq!(cached(&events), 0, "--no-cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_run_reports_exit_code_snippet_and_output() {
    let env = env();
    let dockerfile = format!("{BASE}RUN echo about to fail && exit 3\n");
    let (result, _) = env.build(env.options(&dockerfile)).await;
    match result {
        Err(BuildError::RunFailed {
            exit_code,
            rendered,
        }) => {
            assert_eq!(exit_code, 3);
            assert!(rendered.contains("about to fail"), "{rendered}");
            assert!(
                rendered.contains("did not complete successfully: exit code: 3"),
                "{rendered}"
            );
            assert!(
                rendered.contains(">>> RUN echo about to fail && exit 3"),
                "{rendered}"
            );
        }
        other => panic!("expected a RUN failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_stage_copy_from_and_target() {
    let env = env();
    let dockerfile = format!(
        "{BASE}RUN echo built-in-builder > /artifact\n\nFROM scratch AS unused\nCOPY --from=0 /nothing /\n\nFROM strata-fixtures/busybox:1.35 AS final\nCOPY --from=0 /artifact /opt/artifact\nRUN test \"$(cat /opt/artifact)\" = built-in-builder\n"
    );
    let (result, events) = env.build(env.options(&dockerfile)).await;
    result.unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Started { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("unused")),
        "unneeded stages are not built: {names:?}"
    );

    let mut opts = env.options(&dockerfile);
    opts.target = Some("unused".into());
    let (result, _) = env.build(opts).await;
    assert!(result.is_err(), "the unused stage copies a missing file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_deterministic_digests_with_source_date_epoch() {
    let env = env();
    env.file("f", "x");
    let dockerfile = format!("{BASE}COPY f /f\nUSER nobody\nRUN test \"$(id -un)\" = nobody\n");
    let mut opts = env.options(&dockerfile);
    opts.source_date_epoch = Some(1_700_000_000);
    let first = env.build(opts.clone()).await.0.unwrap();
    let mut opts2 = opts.clone();
    opts2.no_cache = true;
    let second = env.build(opts2).await.0.unwrap();
    assert_eq!(
        first.config_digest, second.config_digest,
        "two clean builds give the same image"
    );
    assert_eq!(first.manifest_digest, second.manifest_digest);
}

fn layer_entries(env: &Env, outcome: &BuildOutcome) -> Vec<Vec<String>> {
    let image = env.store.image(&outcome.manifest_digest).unwrap();
    image
        .manifest
        .layers()
        .iter()
        .map(|l| {
            let digest = strata_image::Digest::try_from(l.digest()).unwrap();
            let reader = strata_layer::decompressed(env.store.open_blob(&digest).unwrap()).unwrap();
            let mut archive = tar::Archive::new(reader);
            archive
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_are_whiteouts_and_replaced_directories_are_opaque() {
    let env = env();
    let dockerfile = format!(
        "{BASE}RUN mkdir -p /data/sub && echo x > /data/sub/f && echo y > /data/keep && echo z > /gone\nRUN rm /gone && rm -rf /data && mkdir /data && echo new > /data/only\nRUN test ! -e /gone && test ! -e /data/keep && test \"$(cat /data/only)\" = new\n"
    );
    let (result, _) = env.build(env.options(&dockerfile)).await;
    let outcome = result.unwrap_or_else(|e| panic!("{e}"));
    let layers = layer_entries(&env, &outcome);
    let second = &layers[layers.len() - 1];
    assert!(second.iter().any(|p| p == ".wh.gone"), "{second:?}");
    assert!(
        second.iter().any(|p| p == "data/.wh..wh..opq"),
        "{second:?}"
    );
    assert!(second.iter().any(|p| p == "data/only"), "{second:?}");
    assert!(
        !second.iter().any(|p| p.contains("keep")),
        "untouched files are not in the diff: {second:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entrypoint_resets_an_inherited_cmd_and_onbuild_triggers_run() {
    let env = env();
    let base = format!("{BASE}CMD [\"inherited\"]\nONBUILD RUN echo triggered > /onbuild\n");
    let mut opts = env.options(&base);
    opts.tags = vec!["docker.io/library/onbuild-base:latest".into()];
    env.build(opts).await.0.unwrap();

    let child =
        "FROM onbuild-base\nENTRYPOINT [\"/bin/echo\"]\nRUN test \"$(cat /onbuild)\" = triggered\n";
    let (result, _) = env.build(env.options(child)).await;
    let outcome = result.unwrap_or_else(|e| panic!("{e}"));
    let config = env.config(&outcome);
    let c = config.oci.config().clone().unwrap();
    assert_eq!(c.entrypoint().clone().unwrap(), vec!["/bin/echo"]);
    assert_eq!(
        c.cmd().clone(),
        None,
        "ENTRYPOINT resets the base image's CMD"
    );
    assert!(
        config.docker.on_build.is_none(),
        "triggers are consumed, not inherited"
    );

    let both = format!("{BASE}CMD [\"a\"]\nENTRYPOINT [\"b\"]\n");
    let outcome = env.build(env.options(&both)).await.0.unwrap();
    let c = env.config(&outcome).oci.config().clone().unwrap();
    assert_eq!(
        c.cmd().clone().unwrap(),
        vec!["a"],
        "a CMD of the same stage is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_reach_run_but_never_a_layer_or_the_history() {
    let env = env();
    let dockerfile = format!(
        "{BASE}RUN --mount=type=secret,id=token test \"$(wc -c < /run/secrets/token)\" = 12 && echo ok > /done\n"
    );
    let mut opts = env.options(&dockerfile);
    opts.secrets = vec![solve::Secret {
        id: "token".into(),
        value: b"s3cr3t-value".to_vec(),
    }];
    let (result, _) = env.build(opts).await;
    let outcome = result.unwrap_or_else(|e| panic!("{e}"));
    let layers = layer_entries(&env, &outcome);
    let last = layers.last().unwrap();
    assert!(!last.iter().any(|p| p.contains("secrets")), "{last:?}");
    let config_bytes = env.store.read_blob(&outcome.config_digest).unwrap();
    assert!(!String::from_utf8_lossy(&config_bytes).contains("s3cr3t-value"));
    for l in env
        .store
        .image(&outcome.manifest_digest)
        .unwrap()
        .manifest
        .layers()
    {
        let digest = strata_image::Digest::try_from(l.digest()).unwrap();
        let blob = env.store.read_blob(&digest).unwrap();
        assert!(
            !blob.windows(12).any(|w| w == b"s3cr3t-value"),
            "secret bytes in a layer"
        );
    }

    let mut missing = env.options(&format!(
        "{BASE}RUN --mount=type=secret,id=absent,required=true true\n"
    ));
    missing.no_cache = true;
    assert!(env.build(missing).await.0.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_stages_run_in_parallel() {
    let env = env();
    let dockerfile = format!(
        "{BASE}RUN sleep 1 && echo a > /a\n\nFROM strata-fixtures/busybox:1.35 AS two\nRUN sleep 1 && echo b > /b\n\nFROM strata-fixtures/busybox:1.35\nCOPY --from=0 /a /a\nCOPY --from=two /b /b\nRUN test \"$(cat /a /b)\" = \"$(printf 'a\\nb')\"\n"
    );
    // Record when each step starts and ends; the two `sleep 1` steps must overlap in time.
    let spans: Arc<Mutex<Vec<(std::time::Instant, Event)>>> = Arc::new(Mutex::new(Vec::new()));
    let record = spans.clone();
    let sink: ProgressSink =
        Arc::new(move |e| record.lock().unwrap().push((std::time::Instant::now(), e)));
    solve::build(
        env.store.clone(),
        env.executor.clone(),
        env.snapshotter.clone(),
        env.options(&dockerfile),
        sink,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let spans = spans.lock().unwrap().clone();
    let interval = |needle: &str| {
        let (start, vertex) = spans
            .iter()
            .find_map(|(t, e)| match e {
                Event::Started { vertex, name } if name.contains(needle) => Some((*t, *vertex)),
                _ => None,
            })
            .unwrap();
        let end = spans
            .iter()
            .find_map(|(t, e)| match e {
                Event::Done { vertex: v, .. } if *v == vertex => Some(*t),
                _ => None,
            })
            .unwrap();
        (start, end)
    };
    let (a_start, a_end) = interval("echo a > /a");
    let (b_start, b_end) = interval("echo b > /b");
    assert!(
        a_start < b_end && b_start < a_end,
        "the two independent RUN steps ran at the same time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_120_layers_builds() {
    let env = env();
    let mut dockerfile = BASE.to_string();
    for i in 0..120 {
        dockerfile.push_str(&format!("RUN echo {i} > /layer-{i}\n"));
    }
    dockerfile.push_str("RUN test \"$(cat /layer-0)\" = 0 && test \"$(cat /layer-119)\" = 119 && test \"$(ls / | grep -c layer-)\" = 120\n");
    let (result, _) = env.build(env.options(&dockerfile)).await;
    let outcome = result.unwrap_or_else(|e| panic!("{e}"));
    assert!(env.config(&outcome).diff_ids().unwrap().len() >= 121);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_and_tmpfs_mounts() {
    let env = env();
    let dockerfile = format!(
        "{BASE}RUN --mount=type=cache,target=/cache echo $(date +%s%N) >> /cache/runs && wc -l < /cache/runs > /count\nRUN --mount=type=tmpfs,target=/scratch touch /scratch/x && test -e /scratch/x\n"
    );
    let first = env.build(env.options(&dockerfile)).await.0.unwrap();
    let mut opts = env.options(&dockerfile);
    opts.no_cache = true;
    env.build(opts).await.0.unwrap();
    let layers = layer_entries(&env, &first);
    assert!(
        !layers
            .iter()
            .flatten()
            .any(|p| p.starts_with("cache") || p.starts_with("scratch")),
        "{layers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_mounts_from_the_context_and_a_stage() {
    let env = env();
    env.file("conf/app.ini", "v1\n");
    let dockerfile = format!(
        "{BASE}RUN echo from-stage > /made\n\nFROM strata-fixtures/busybox:1.35\nRUN --mount=type=bind,source=conf,target=/mnt/conf cat /mnt/conf/app.ini > /copied\nRUN --mount=type=bind,from=0,source=/made,target=/mnt/made test \"$(cat /mnt/made)\" = from-stage\nRUN --mount=type=bind,source=conf,target=/mnt/rw,rw echo scribble > /mnt/rw/app.ini && test \"$(cat /copied)\" = v1\n"
    );
    let (result, _) = env.build(env.options(&dockerfile)).await;
    result.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        std::fs::read_to_string(env.context.join("conf/app.ini")).unwrap(),
        "v1\n",
        "rw writes are discarded"
    );

    // The bound file is part of the cache key.
    env.file("conf/app.ini", "v2\n");
    let changed = dockerfile.replace("= v1", "= v2");
    let (result, events) = env.build(env.options(&changed)).await;
    result.unwrap_or_else(|e| panic!("{e}"));
    let cached_names: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Event::Cached { vertex } => Some(*vertex),
            _ => None,
        })
        .collect();
    assert!(
        cached_names.len() <= 2,
        "the context bind step rebuilt: {events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_as_environment_variables() {
    let env = env();
    let dockerfile = format!(
        "{BASE}RUN --mount=type=secret,id=tok,env=TOKEN test \"${{#TOKEN}}\" = 9 && echo ok > /ok\n"
    );
    let mut opts = env.options(&dockerfile);
    opts.secrets = vec![solve::Secret {
        id: "tok".into(),
        value: b"abcdefghi".to_vec(),
    }];
    let outcome = env.build(opts).await.0.unwrap_or_else(|e| panic!("{e}"));
    let config = String::from_utf8(env.store.read_blob(&outcome.config_digest).unwrap()).unwrap();
    assert!(!config.contains("abcdefghi"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_cache_mounts_are_used_by_one_step_at_a_time() {
    build_two_concurrent_cache_steps("shared", "locked").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_cache_mounts_give_concurrent_steps_their_own_instance() {
    build_two_concurrent_cache_steps("p", "private").await;
}

/// Builds two independent stages whose steps use the cache mount `id` with `sharing` at the same
/// time; each step fails if it sees the other's marker file in its cache while it sleeps.
async fn build_two_concurrent_cache_steps(id: &str, sharing: &str) {
    let env = env();
    let step = |name: &str| {
        format!(
            "RUN --mount=type=cache,id={id},target=/c,sharing={sharing} test ! -e /c/busy && echo {name} > /c/busy && sleep 1 && test \"$(cat /c/busy)\" = {name} && rm /c/busy && echo {name} > /{name}\n"
        )
    };
    let dockerfile = format!(
        "{BASE}{}\nFROM strata-fixtures/busybox:1.35\n{}\nFROM strata-fixtures/busybox:1.35\nCOPY --from=0 /one /one\nCOPY --from=1 /two /two\n",
        step("one"),
        step("two")
    );
    env.build(env.options(&dockerfile))
        .await
        .0
        .unwrap_or_else(|e| panic!("{e}"));
}
