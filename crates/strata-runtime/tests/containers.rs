//! Real containers, as root, with runc (and crun when its probe passes on this host): a busybox
//! layer as the lower of an overlay view, a process run in it, the upper directory checked.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{tree, unpack_busybox, write};
use strata_runtime::exec::RuntimeKind;
use strata_runtime::{
    ExecError, Executor, Network, OutputSink, OverlaySnapshotter, ProcessSpec, RuncExecutor,
    Snapshotter, StdinSource, Stdio, UpperDir, resolve_user,
};

/// A busybox lower, an overlay view on it and an executor state dir.
struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        for sub in ["upper", "work", "merged", "state"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        unpack_busybox(&root.join("busybox"));
        Self { _dir: dir, root }
    }
    fn busybox(&self) -> PathBuf {
        self.root.join("busybox")
    }
    fn merged(&self) -> PathBuf {
        self.root.join("merged")
    }
    fn upper(&self) -> UpperDir {
        UpperDir::new(self.root.join("upper"), self.root.join("work"))
    }
    fn snapshotter(&self) -> OverlaySnapshotter {
        OverlaySnapshotter::new(&self.root.join("state")).unwrap()
    }
    fn executor(&self, kind: RuntimeKind) -> RuncExecutor {
        RuncExecutor::new(kind, &self.root.join("state")).unwrap()
    }
}

/// Output collected line by line.
#[derive(Clone, Default)]
struct Collected(Arc<Mutex<Vec<(Instant, String)>>>);

impl Collected {
    fn sink(&self) -> OutputSink {
        let lines = self.0.clone();
        OutputSink::Lines(Box::new(move |line| {
            lines
                .lock()
                .unwrap()
                .push((Instant::now(), String::from_utf8_lossy(line).into_owned()))
        }))
    }
    fn text(&self) -> String {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.as_str())
            .collect()
    }
}

fn sh(script: &str) -> ProcessSpec {
    let mut spec = ProcessSpec::new(vec!["/bin/sh".into(), "-c".into(), script.into()]);
    spec.env = vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin".into()];
    spec.hostname = "strata-test".into();
    spec
}

async fn run(
    executor: &RuncExecutor,
    spec: &ProcessSpec,
    rootfs: &Path,
) -> (
    Result<strata_runtime::ExitStatus, ExecError>,
    String,
    String,
) {
    let (out, err) = (Collected::default(), Collected::default());
    let stdio = Stdio {
        stdin: StdinSource::Null,
        stdout: out.sink(),
        stderr: err.sink(),
    };
    let status = executor.run(spec, rootfs, stdio).await;
    (status, out.text(), err.text())
}

/// The runtimes to exercise: runc always, crun when it works here.
async fn runtimes() -> Vec<RuntimeKind> {
    let mut kinds = vec![RuntimeKind::Runc];
    let state = tempfile::tempdir().unwrap();
    if strata_runtime::exec::probe_crun(state.path()).await.is_ok() {
        kinds.push(RuntimeKind::Crun);
    } else {
        eprintln!("crun probe failed: crun not exercised");
    }
    kinds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_streams_output_exits_with_its_code_and_leaves_only_its_changes() {
    for kind in runtimes().await {
        let setup = Setup::new();
        let snapshotter = setup.snapshotter();
        let busybox = setup.busybox();
        let active = snapshotter
            .prepare(&[&busybox], Some(&setup.upper()), &setup.merged())
            .unwrap();
        let script = "echo hi; id; hostname; cat /etc/hosts; ls /dev; \
                      echo made > /made-by-run; echo err >&2; exit 3";
        let (status, out, err) = run(&setup.executor(kind), &sh(script), active.root()).await;
        let status = status.unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert_eq!(status.code(), 3, "{kind:?}");
        assert_eq!(err, "err\n", "{kind:?}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "hi");
        assert_eq!(lines[1], "uid=0(root) gid=0(root)");
        assert_eq!(lines[2], "strata-test");
        assert_eq!(lines[3], "127.0.0.1\tlocalhost strata-test");
        assert_eq!(lines[4], "::1\tlocalhost ip6-localhost ip6-loopback");
        let dev: Vec<&str> = lines[5..].to_vec();
        for node in [
            "full", "mqueue", "null", "pts", "random", "shm", "tty", "urandom", "zero",
        ] {
            assert!(dev.contains(&node), "{kind:?}: /dev lacks {node}: {dev:?}");
        }
        snapshotter.commit(active).unwrap();
        let upper = tree(&setup.root.join("upper"));
        assert_eq!(
            upper.keys().collect::<Vec<_>>(),
            ["made-by-run"],
            "{kind:?}: the upper holds only the run's own change"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_points_in_an_empty_rootfs_leave_no_trace() {
    for kind in runtimes().await {
        let setup = Setup::new();
        // A rootfs with nothing but a static busybox: no /proc, /dev, /sys or /etc.
        let lower = setup.root.join("scratch");
        std::fs::create_dir_all(lower.join("bin")).unwrap();
        std::fs::copy(
            setup.busybox().join("bin/busybox"),
            lower.join("bin/busybox"),
        )
        .unwrap();
        let snapshotter = setup.snapshotter();
        let active = snapshotter
            .prepare(&[&lower], Some(&setup.upper()), &setup.merged())
            .unwrap();
        let mut spec = ProcessSpec::new(vec![
            "/bin/busybox".into(),
            "cat".into(),
            "/etc/hostname".into(),
        ]);
        spec.hostname = "scratchy".into();
        let (status, out, _) = run(&setup.executor(kind), &spec, active.root()).await;
        assert!(status.unwrap().success());
        assert_eq!(out, "scratchy\n");
        snapshotter.commit(active).unwrap();
        assert!(tree(&setup.root.join("upper")).is_empty(), "{kind:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_none_has_only_loopback_and_host_sees_the_hosts_interfaces() {
    let mut host_interfaces: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    host_interfaces.sort();
    for kind in runtimes().await {
        let setup = Setup::new();
        let executor = setup.executor(kind);
        let mut spec = sh("ls /sys/class/net");
        spec.network = Network::None;
        let (status, out, _) = run(&executor, &spec, &setup.busybox()).await;
        assert!(status.unwrap().success());
        assert_eq!(
            out.split_whitespace().collect::<Vec<_>>(),
            ["lo"],
            "{kind:?}"
        );
        spec.network = Network::Host;
        let (status, out, _) = run(&executor, &spec, &setup.busybox()).await;
        assert!(status.unwrap().success());
        let mut seen: Vec<&str> = out.split_whitespace().collect();
        seen.sort();
        assert_eq!(seen, host_interfaces, "{kind:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_switching() {
    let setup = Setup::new();
    let executor = setup.executor(RuntimeKind::Runc);
    let group_file = setup.busybox().join("etc/group");
    let mut groups = std::fs::read_to_string(&group_file).unwrap();
    groups.push_str("staff:x:50:nobody\n");
    std::fs::write(&group_file, groups).unwrap();
    let cases = [
        (
            "nobody",
            "uid=65534(nobody) gid=65534(nobody) groups=50(staff)",
        ),
        (
            "65534",
            "uid=65534(nobody) gid=65534(nobody) groups=50(staff)",
        ),
        ("1234:5678", "uid=1234 gid=5678"),
        ("nobody:root", "uid=65534(nobody) gid=0(root)"),
        ("4321", "uid=4321 gid=0(root)"),
    ];
    for (user, expected) in cases {
        let mut spec = sh("id");
        spec.user = resolve_user(&setup.busybox(), user).unwrap();
        let (status, out, _) = run(&executor, &spec, &setup.busybox()).await;
        assert!(status.unwrap().success());
        assert_eq!(out.trim_end(), expected, "{user}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_on_one_hundred_twenty_lowers() {
    let setup = Setup::new();
    let mut lowers: Vec<PathBuf> = (1..120)
        .rev()
        .map(|n| {
            let lower = setup.root.join(format!("layers/{n}"));
            write(&lower, &format!("layers/{n:03}"), "");
            write(&lower, "layers/top", &n.to_string());
            lower
        })
        .collect();
    lowers.push(setup.busybox());
    let refs: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
    let snapshotter = setup.snapshotter();
    let active = snapshotter
        .prepare(&refs, Some(&setup.upper()), &setup.merged())
        .unwrap();
    let (status, out, _) = run(
        &setup.executor(RuntimeKind::Runc),
        &sh("echo $(cat /layers/top); ls /layers | wc -l"),
        active.root(),
    )
    .await;
    assert!(status.unwrap().success());
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["119", "120"]);
    snapshotter.commit(active).unwrap();
    assert!(tree(&setup.root.join("upper")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_arrives_while_the_process_runs_and_stdin_is_fed() {
    let setup = Setup::new();
    let executor = setup.executor(RuntimeKind::Runc);
    let out = Collected::default();
    let stdio = Stdio {
        stdin: StdinSource::Null,
        stdout: out.sink(),
        stderr: OutputSink::Null,
    };
    let start = Instant::now();
    executor
        .run(
            &sh("echo first; sleep 1; echo second"),
            &setup.busybox(),
            stdio,
        )
        .await
        .unwrap();
    let lines = out.0.lock().unwrap().clone();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[1].0 - lines[0].0 >= Duration::from_millis(700),
        "the first line came {:?} after start, the second {:?}",
        lines[0].0 - start,
        lines[1].0 - start
    );

    let mut spec = sh("tr a-z A-Z");
    spec.stdin = true;
    let out = Collected::default();
    let stdio = Stdio {
        stdin: StdinSource::Bytes(b"piped in\n".to_vec()),
        stdout: out.sink(),
        stderr: OutputSink::Null,
    };
    executor.run(&spec, &setup.busybox(), stdio).await.unwrap();
    assert_eq!(out.text(), "PIPED IN\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_failure_is_an_error_not_an_exit_code() {
    let setup = Setup::new();
    let executor = setup.executor(RuntimeKind::Runc);
    let spec = ProcessSpec::new(vec!["/no/such/binary".into()]);
    let (status, _, _) = run(&executor, &spec, &setup.busybox()).await;
    match status {
        Err(ExecError::Runtime { message, .. }) => {
            assert!(message.contains("/no/such/binary"), "{message}")
        }
        other => panic!("expected a runtime error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_kills_and_deletes_its_container() {
    for kind in runtimes().await {
        let setup = Setup::new();
        let snapshotter = setup.snapshotter();
        let busybox = setup.busybox();
        let active = snapshotter
            .prepare(&[&busybox], Some(&setup.upper()), &setup.merged())
            .unwrap();
        let executor = setup.executor(kind);
        let spec = sh("sleep 60");
        let started = Instant::now();
        let outcome = tokio::time::timeout(
            Duration::from_millis(500),
            executor.run(&spec, active.root(), Stdio::null()),
        )
        .await;
        assert!(outcome.is_err(), "the run was cut short");
        assert!(started.elapsed() < Duration::from_secs(10));
        let listed = std::process::Command::new(kind.name())
            .arg("--root")
            .arg(setup.root.join("state").join(kind.name()))
            .args(["list", "-q"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&listed.stdout).trim(),
            "",
            "{kind:?}"
        );
        snapshotter.commit(active).unwrap();
        assert!(tree(&setup.root.join("upper")).is_empty(), "{kind:?}");
    }
}

/// Per-RUN overhead: container start to exit for `true`, through the executor, interleaved
/// with the bare runtime CLI on an equivalent bundle (same generated spec) as the baseline.
/// `cargo test -p strata-runtime --test containers -- --ignored --nocapture measure`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test"]
async fn measure_run_overhead() {
    const RUNS: usize = 50;
    let setup = Setup::new();
    let millis = |d: Duration| d.as_secs_f64() * 1e3;
    let summary = |times: &mut Vec<Duration>| {
        times.sort();
        let mean = times.iter().sum::<Duration>() / times.len() as u32;
        format!(
            "median {:5.1} ms, mean {:5.1} ms, min {:5.1} ms",
            millis(times[times.len() / 2]),
            millis(mean),
            millis(times[0])
        )
    };
    for kind in runtimes().await {
        let executor = setup.executor(kind);
        for network in [Network::None, Network::Host] {
            let mut spec = ProcessSpec::new(vec!["/bin/true".into()]);
            spec.network = network;
            // The baseline bundle: the same spec, the /etc files already in place.
            let bundle = setup
                .root
                .join(format!("bundle-{}-{network:?}", kind.name()));
            let etc = strata_runtime::EtcFiles::in_dir(&bundle.join("etc"));
            std::fs::create_dir_all(bundle.join("etc")).unwrap();
            for file in [&etc.hosts, &etc.resolv_conf, &etc.hostname] {
                std::fs::write(file, "\n").unwrap();
            }
            let oci = strata_runtime::runtime_spec(&spec, &setup.busybox(), &etc).unwrap();
            let mut json: serde_json::Value = serde_json::to_value(&oci).unwrap();
            json["process"]["rlimits"] = serde_json::json!([]);
            std::fs::write(bundle.join("config.json"), json.to_string()).unwrap();
            let raw_root = setup.root.join(format!("raw-{}", kind.name()));
            let raw = |n: usize| {
                let mut command = if executor.hides_cgroup2() {
                    let mut c = std::process::Command::new("unshare");
                    c.args(["-m", "sh", "-c"]).arg(format!(
                        "umount /sys/fs/cgroup/unified && exec crun --root {} run --bundle {} raw-{n}",
                        raw_root.display(),
                        bundle.display()
                    ));
                    c
                } else {
                    let mut c = std::process::Command::new(kind.name());
                    c.arg("--root")
                        .arg(&raw_root)
                        .args(["run", "--bundle"])
                        .arg(&bundle);
                    c.arg(format!("raw-{n}"));
                    c
                };
                command.stdin(std::process::Stdio::null());
                let start = Instant::now();
                let status = command.status().unwrap();
                assert!(status.success());
                start.elapsed()
            };
            let (mut ours, mut bare) = (Vec::new(), Vec::new());
            for n in 0..RUNS {
                let start = Instant::now();
                let status = executor
                    .run(&spec, &setup.busybox(), Stdio::null())
                    .await
                    .unwrap();
                ours.push(start.elapsed());
                assert!(status.success());
                bare.push(raw(n));
            }
            println!(
                "{} {network:?}: executor {} | bare CLI {} (n={RUNS}, hidden cgroup2: {})",
                kind.name(),
                summary(&mut ours),
                summary(&mut bare),
                executor.hides_cgroup2(),
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_is_a_pty_the_runtime_proxies() {
    for kind in runtimes().await {
        let setup = Setup::new();
        let mut spec = sh("tty; echo to-stderr >&2");
        spec.tty = true;
        let (status, out, err) = run(&setup.executor(kind), &spec, &setup.busybox()).await;
        assert!(status.unwrap().success(), "{kind:?}");
        // One terminal for both streams; the pty turns "\n" into "\r\n".
        assert_eq!(out, "/dev/pts/0\r\nto-stderr\r\n", "{kind:?}");
        assert_eq!(err, "", "{kind:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_container_can_be_signalled_from_outside() {
    for kind in runtimes().await {
        let setup = Setup::new();
        let executor = Arc::new(setup.executor(kind));
        let id = format!("strata-test-signal-{}", kind.name());
        let spec = sh("trap 'echo terminated; exit 42' TERM; sleep 30 & wait");
        let out = Collected::default();
        let stdio = Stdio {
            stdin: StdinSource::Null,
            stdout: out.sink(),
            stderr: OutputSink::Null,
        };
        let runner = {
            let (executor, id, rootfs) = (executor.clone(), id.clone(), setup.busybox());
            tokio::spawn(async move { executor.run_with_id(&id, &spec, &rootfs, stdio).await })
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let state = executor.state(&id).await.unwrap();
            if state.as_ref().is_some_and(|s| s.status == "running") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{kind:?}: never running: {state:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Give the shell a moment to install its trap.
        tokio::time::sleep(Duration::from_millis(200)).await;
        executor.kill(&id, "TERM").await.unwrap();
        let status = runner.await.unwrap().unwrap();
        assert_eq!(status.code(), 42, "{kind:?}");
        assert_eq!(out.text(), "terminated\n");
        assert_eq!(
            executor.state(&id).await.unwrap(),
            None,
            "{kind:?}: deleted after exit"
        );
        assert!(matches!(
            executor.kill("../escape", "KILL").await,
            Err(ExecError::InvalidContainerId { .. })
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_on_the_copy_snapshotter_leaves_only_its_changes() {
    use strata_runtime::CopySnapshotter;
    let setup = Setup::new();
    let snapshotter = CopySnapshotter::new();
    let busybox = setup.busybox();
    let active = snapshotter
        .prepare(&[&busybox], Some(&setup.upper()), &setup.merged())
        .unwrap();
    let (status, _, _) = run(
        &setup.executor(RuntimeKind::Runc),
        &sh("echo made > /tmp/made-by-run"),
        active.root(),
    )
    .await;
    assert!(status.unwrap().success());
    snapshotter.commit(active).unwrap();
    let upper = tree(&setup.root.join("upper"));
    assert_eq!(upper.keys().collect::<Vec<_>>(), ["tmp", "tmp/made-by-run"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_do_not_disturb_each_other() {
    let setup = Setup::new();
    let executor = Arc::new(setup.executor(RuntimeKind::Runc));
    let mut tasks = Vec::new();
    for n in 0..4 {
        let (executor, rootfs) = (executor.clone(), setup.busybox());
        tasks.push(tokio::spawn(async move {
            let spec = sh(&format!("echo {n}; exit {n}"));
            let (status, out, _) = run(&executor, &spec, &rootfs).await;
            (n, status.unwrap().code(), out)
        }));
    }
    for task in tasks {
        let (n, code, out) = task.await.unwrap();
        assert_eq!((code, out), (n, format!("{n}\n")));
    }
    // They shared one rootfs: the last one out removed the mount points for all.
    let left: Vec<String> = tree(&setup.busybox())
        .into_keys()
        .filter(|k| !k.contains('/'))
        .collect();
    assert_eq!(left, ["bin", "etc", "home", "root", "tmp", "usr", "var"]);
    assert!(!setup.busybox().join("etc/hosts").exists());
}
