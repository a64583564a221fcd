//! The generated runtime spec, field by field.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Capability, LinuxNamespaceType, PosixRlimitType, Spec};

use super::*;

fn etc() -> EtcFiles {
    EtcFiles::in_dir(Path::new("/run/strata/bundle/etc"))
}

fn build_process() -> ProcessSpec {
    ProcessSpec {
        args: vec!["/bin/sh".into(), "-c".into(), "make".into()],
        env: vec!["PATH=/usr/bin:/bin".into(), "HOME=/root".into()],
        cwd: PathBuf::from("/src"),
        user: User {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![50, 999],
        },
        hostname: "buildhost".into(),
        network: Network::Host,
        mounts: vec![
            Mount {
                kind: MountKind::Bind {
                    source: PathBuf::from("/var/cache/strata/go"),
                    readonly: false,
                },
                destination: PathBuf::from("/root/.cache/go-build"),
            },
            Mount {
                kind: MountKind::Tmpfs {
                    size: Some(64 << 20),
                },
                destination: PathBuf::from("/tmp"),
            },
            Mount {
                kind: MountKind::Bind {
                    source: PathBuf::from("/ctx"),
                    readonly: true,
                },
                destination: PathBuf::from("/src/ctx"),
            },
        ],
        tty: false,
        stdin: false,
    }
}

fn generate(process: &ProcessSpec) -> Spec {
    runtime_spec(process, Path::new("/s/merged"), &etc()).unwrap()
}

fn namespaces(spec: &Spec) -> Vec<LinuxNamespaceType> {
    spec.linux()
        .as_ref()
        .unwrap()
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| n.typ())
        .collect()
}

fn mount_table(spec: &Spec) -> Vec<(String, String, String, String)> {
    spec.mounts()
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m.destination().display().to_string(),
                m.typ().clone().unwrap_or_default(),
                m.source()
                    .as_ref()
                    .map(|s| s.display().to_string())
                    .unwrap_or_default(),
                m.options().clone().unwrap_or_default().join(","),
            )
        })
        .collect()
}

#[test]
fn process_fields_come_from_the_process_spec() {
    let spec = generate(&build_process());
    let process = spec.process().as_ref().unwrap();
    assert_eq!(process.args().as_ref().unwrap(), &build_process().args);
    assert_eq!(process.env().as_ref().unwrap(), &build_process().env);
    assert_eq!(process.cwd(), Path::new("/src"));
    assert_eq!(process.user().uid(), 1000);
    assert_eq!(process.user().gid(), 1000);
    assert_eq!(
        process.user().additional_gids().as_ref().unwrap(),
        &[50, 999]
    );
    assert_eq!(process.terminal(), Some(false));
    assert_eq!(process.no_new_privileges(), Some(false));
    assert_eq!(spec.hostname().as_deref(), Some("buildhost"));
    let root = spec.root().as_ref().unwrap();
    assert_eq!(root.path(), Path::new("/s/merged"));
    assert_eq!(root.readonly(), Some(false));
}

#[test]
fn capabilities_are_dockers_default_set() {
    let spec = generate(&build_process());
    let caps = spec
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .as_ref()
        .unwrap();
    for set in [caps.bounding(), caps.effective(), caps.permitted()] {
        let set = set.as_ref().unwrap();
        assert_eq!(set.len(), 14);
        assert!(set.contains(&Capability::Chown));
        assert!(set.contains(&Capability::NetBindService));
        assert!(!set.contains(&Capability::SysAdmin));
        assert!(!set.contains(&Capability::NetAdmin));
    }
    assert!(caps.inheritable().as_ref().is_none_or(|c| c.is_empty()));
    assert!(caps.ambient().as_ref().is_none_or(|c| c.is_empty()));
}

#[test]
fn nofile_limit_is_raised() {
    let spec = generate(&build_process());
    let rlimits = spec.process().as_ref().unwrap().rlimits().as_ref().unwrap();
    assert_eq!(rlimits.len(), 1);
    assert_eq!(rlimits[0].typ(), PosixRlimitType::RlimitNofile);
    assert_eq!(rlimits[0].soft(), 1_048_576);
    assert_eq!(rlimits[0].hard(), 1_048_576);
}

#[test]
fn host_network_shares_the_network_namespace_and_none_gets_its_own() {
    use LinuxNamespaceType::*;
    let mut process = build_process();
    assert_eq!(namespaces(&generate(&process)), [Mount, Pid, Ipc, Uts]);
    process.network = super::Network::None;
    assert_eq!(
        namespaces(&generate(&process)),
        [Mount, Pid, Ipc, Uts, Network]
    );
}

#[test]
fn mounts_are_the_standard_set_then_etc_files_then_extra_mounts_parents_first() {
    let spec = generate(&build_process());
    let expected: Vec<(&str, &str, &str, &str)> = vec![
        ("/proc", "proc", "proc", "nosuid,noexec,nodev"),
        (
            "/dev",
            "tmpfs",
            "tmpfs",
            "nosuid,strictatime,mode=755,size=65536k",
        ),
        (
            "/dev/pts",
            "devpts",
            "devpts",
            "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5",
        ),
        (
            "/dev/shm",
            "tmpfs",
            "shm",
            "nosuid,noexec,nodev,mode=1777,size=65536k",
        ),
        ("/dev/mqueue", "mqueue", "mqueue", "nosuid,noexec,nodev"),
        ("/sys", "sysfs", "sysfs", "nosuid,noexec,nodev,ro"),
        (
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            "ro,nosuid,noexec,nodev",
        ),
        (
            "/etc/hosts",
            "bind",
            "/run/strata/bundle/etc/hosts",
            "rbind,rprivate,ro",
        ),
        (
            "/etc/resolv.conf",
            "bind",
            "/run/strata/bundle/etc/resolv.conf",
            "rbind,rprivate,ro",
        ),
        (
            "/etc/hostname",
            "bind",
            "/run/strata/bundle/etc/hostname",
            "rbind,rprivate,ro",
        ),
        (
            "/tmp",
            "tmpfs",
            "tmpfs",
            "nosuid,nodev,mode=1777,size=67108864",
        ),
        ("/src/ctx", "bind", "/ctx", "rbind,rprivate,ro"),
        (
            "/root/.cache/go-build",
            "bind",
            "/var/cache/strata/go",
            "rbind,rprivate",
        ),
    ];
    let got = mount_table(&spec);
    let got: Vec<(&str, &str, &str, &str)> = got
        .iter()
        .map(|(a, b, c, d)| (a.as_str(), b.as_str(), c.as_str(), d.as_str()))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn masked_and_readonly_paths_and_device_rules_follow_docker() {
    let spec = generate(&build_process());
    let linux = spec.linux().as_ref().unwrap();
    assert_eq!(
        linux.masked_paths().as_ref().unwrap(),
        &strings(&MASKED_PATHS)
    );
    assert_eq!(
        linux.readonly_paths().as_ref().unwrap(),
        &strings(&READONLY_PATHS)
    );
    let rules: Vec<String> = linux
        .resources()
        .as_ref()
        .unwrap()
        .devices()
        .as_ref()
        .unwrap()
        .iter()
        .map(|r| format!("{} {r}", if r.allow() { "allow" } else { "deny" }))
        .collect();
    assert_eq!(
        rules,
        [
            "deny a *:* rwm",
            "allow c *:* m",
            "allow b *:* m",
            "allow c 1:3 rwm",
            "allow c 1:5 rwm",
            "allow c 1:7 rwm",
            "allow c 1:8 rwm",
            "allow c 1:9 rwm",
            "allow c 5:0 rwm",
            "allow c 5:2 rwm",
            "allow c 136:* rwm",
            "allow c 10:200 rwm",
        ]
    );
}

#[test]
fn the_json_uses_the_runtime_spec_field_names() {
    let json = serde_json::to_value(generate(&build_process())).unwrap();
    assert_eq!(json["ociVersion"], "1.0.2");
    assert_eq!(
        json["process"]["user"]["additionalGids"],
        serde_json::json!([50, 999])
    );
    assert_eq!(json["process"]["noNewPrivileges"], false);
    assert_eq!(json["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
    assert_eq!(json["linux"]["maskedPaths"][0], "/proc/asound");
    assert_eq!(json["root"]["path"], "/s/merged");
}

#[test]
fn invalid_input_is_refused() {
    let mut process = build_process();
    process.args.clear();
    assert!(matches!(
        runtime_spec(&process, Path::new("/r"), &etc()),
        Err(SpecError::NoArgs)
    ));
    let mut process = build_process();
    process.cwd = PathBuf::from("src");
    assert!(matches!(
        runtime_spec(&process, Path::new("/r"), &etc()),
        Err(SpecError::RelativeCwd { .. })
    ));
    let mut process = build_process();
    process.mounts[0].destination = PathBuf::from("cache");
    assert!(matches!(
        runtime_spec(&process, Path::new("/r"), &etc()),
        Err(SpecError::RelativeMountDestination { .. })
    ));
    assert!(matches!(
        runtime_spec(&build_process(), Path::new("r"), &etc()),
        Err(SpecError::RelativeRootfs { .. })
    ));
}

#[test]
fn etc_files() {
    assert_eq!(
        hosts_file("buildhost"),
        "127.0.0.1\tlocalhost buildhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    );
    assert_eq!(hostname_file("buildhost"), "buildhost\n");
    let cases: &[(Option<&str>, Network, &str)] = &[
        (
            Some("nameserver 10.0.0.53\nsearch corp\n"),
            Network::Host,
            "nameserver 10.0.0.53\nsearch corp\n",
        ),
        (
            Some("nameserver 127.0.0.53\noptions edns0\n"),
            Network::Host,
            "nameserver 127.0.0.53\noptions edns0\n",
        ),
        (
            Some("nameserver 127.0.0.53\noptions edns0\n"),
            Network::None,
            "options edns0\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n",
        ),
        (
            Some("nameserver ::1\nnameserver 10.0.0.53\n"),
            Network::None,
            "nameserver 10.0.0.53\n",
        ),
        (
            None,
            Network::Host,
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n",
        ),
    ];
    for (host, network, expected) in cases {
        assert_eq!(
            resolv_conf(*host, *network),
            *expected,
            "{host:?} {network:?}"
        );
    }
}
