//! from_oci: golden configs for runc's default spec and for a spec using every field,
//! errors that name the field, and properties (round-trip, no panics).

use std::fs;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proxcage_lxc_config::oci_spec::runtime::Spec;
use proxcage_lxc_config::{from_oci, LxcConfig, ProcessFile, ResolvedPaths, TranslateError};
use serde_json::{json, Value};

/// A bundle-like directory: rootfs with a few directories, and `data` beside it.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("pcg-golden-")
        .tempdir()
        .unwrap();
    for sub in [
        "rootfs/etc",
        "rootfs/proc",
        "rootfs/sys",
        "rootfs/dev",
        "rootfs/var",
        "rootfs/real",
        "data",
    ] {
        fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    std::os::unix::fs::symlink("/real", dir.path().join("rootfs/var/link")).unwrap();
    fs::write(dir.path().join("file.txt"), "x").unwrap();
    dir
}

fn paths(dir: &Path, spec: &Spec) -> ResolvedPaths {
    let sources = spec
        .mounts()
        .iter()
        .flatten()
        .map(|m| {
            m.source().as_ref().map(|s| {
                if s.is_absolute() || m.typ().as_deref() != Some("bind") {
                    s.clone()
                } else {
                    dir.join(s)
                }
            })
        })
        .collect();
    ResolvedPaths::new(dir.join("rootfs"), sources, dir.join("files"))
}

fn translate(dir: &Path, spec: &Spec) -> Result<proxcage_lxc_config::Translation, TranslateError> {
    from_oci(spec, &paths(dir, spec))
}

/// Compares with `tests/golden/<name>`, with the fixture path as `$DIR`; writes the file
/// instead when UPDATE_GOLDEN is set.
fn golden(name: &str, dir: &Path, config: &LxcConfig) {
    let text = config.render().replace(dir.to_str().unwrap(), "$DIR");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&path, &text).unwrap();
    }
    let want = fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing: run with UPDATE_GOLDEN=1", path.display()));
    assert_eq!(text, want, "{name} differs (UPDATE_GOLDEN=1 rewrites it)");
}

fn spec_from(value: Value) -> Spec {
    serde_json::from_value(value).unwrap()
}

fn runc_default() -> Value {
    serde_json::to_value(proxcage_oci::default_spec(false)).unwrap()
}

#[test]
fn runc_default_spec_golden() {
    let dir = fixture();
    let spec = proxcage_oci::default_spec(false);
    let t = translate(dir.path(), &spec).unwrap();
    golden("runc-default.conf", dir.path(), t.config());
    let process = t
        .files()
        .iter()
        .find(|f| f.path.ends_with("process"))
        .unwrap();
    let p = ProcessFile::decode(&process.contents).unwrap();
    assert_eq!(p.args, ["sh"]);
    assert_eq!(p.cwd, "/");
    assert_eq!(
        p.env,
        [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "TERM=xterm"
        ]
    );
    assert!(t
        .mount_targets()
        .iter()
        .any(|m| m.path == dir.path().join("rootfs/.proxcage/init") && !m.dir));
}

fn everything() -> Value {
    json!({
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "every",
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0, "additionalGids": [5, 10], "umask": 18},
            "args": ["sh", "-c", "echo 'a b'", ""],
            "env": ["PATH=/bin", "SPACE=trail  "],
            "cwd": "/srv",
            "capabilities": {
                "bounding": ["CAP_SYS_ADMIN", "CAP_CHOWN", "CAP_NET_RAW"],
                "effective": ["CAP_NET_RAW", "CAP_CHOWN", "CAP_SYS_ADMIN"],
                "permitted": ["CAP_CHOWN", "CAP_NET_RAW", "CAP_SYS_ADMIN"],
                "ambient": ["CAP_CHOWN"]
            },
            "rlimits": [
                {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
                {"type": "RLIMIT_CORE", "soft": 0, "hard": 18446744073709551615u64}
            ],
            "noNewPrivileges": true,
            "apparmorProfile": "lxc-container-default",
            "selinuxLabel": "system_u:system_r:container_t:s0",
            "oomScoreAdj": 100
        },
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["newinstance"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro"]},
            {"destination": "/var/link/data", "type": "bind", "source": "data", "options": ["rbind", "ro", "rprivate"]},
            {"destination": "/etc/file.txt", "type": "bind", "source": "file.txt", "options": ["bind"]},
            {"destination": "/with space", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "mode=1777", "rprivate", "tmpcopyup"]},
            {"destination": "/cg2", "type": "cgroup", "source": "cgroup", "options": ["private", "ro"]}
        ],
        "hooks": {
            "createRuntime": [{"path": "/usr/bin/hook", "args": ["hook", "create runtime"], "env": ["A=b c"], "timeout": 5}],
            "createContainer": [{"path": "/usr/bin/hook", "args": ["/usr/bin/hook", "it's"]}],
            "startContainer": [{"path": "/bin/true"}],
            "poststart": [{"path": "/bin/true"}],
            "poststop": [{"path": "/bin/false"}]
        },
        "linux": {
            "namespaces": [
                {"type": "mount"}, {"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                {"type": "user"}, {"type": "cgroup"},
                {"type": "network", "path": "/var/run/netns/x"}
            ],
            "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0}],
            "resources": {
                "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rw"}],
                "memory": {"limit": 536870912, "reservation": 268435456, "swap": 1073741824},
                "cpu": {"shares": 512, "quota": 20000, "period": 100000, "burst": 1000, "idle": 0, "cpus": "0-1", "mems": "0"},
                "pids": {"limit": 100},
                "blockIO": {
                    "weight": 100,
                    "weightDevice": [{"major": 8, "minor": 0, "weight": 200}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
                    "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2000}],
                    "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 30}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 40}]
                },
                "hugepageLimits": [{"pageSize": "2MB", "limit": 0}, {"pageSize": "1GB", "limit": 1073741824}],
                "rdma": {"mlx5_0": {"hcaHandles": 3, "hcaObjects": 100}},
                "unified": {"memory.high": "400000000", "io.bfq.weight": "50"}
            },
            "cgroupsPath": "/proxcage/every",
            "sysctl": {"net.ipv4.ip_forward": "1", "kernel.msgmax": "8192"},
            "seccomp": {
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": 38,
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [
                    {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                    {"names": ["kill"], "action": "SCMP_ACT_LOG"}
                ]
            },
            "rootfsPropagation": "rslave",
            "maskedPaths": ["/proc/kcore", "/proc/acpi", "/etc/missing"],
            "readonlyPaths": ["/proc/sys", "/etc"],
            "personality": {"domain": "LINUX"},
            "timeOffsets": {"monotonic": {"secs": 1, "nanosecs": 5}, "boottime": {"secs": -2}}
        }
    })
}

#[test]
fn everything_spec_golden() {
    let dir = fixture();
    let spec = spec_from(everything());
    let t = translate(dir.path(), &spec).unwrap();
    golden("everything.conf", dir.path(), t.config());
    let seccomp = t
        .files()
        .iter()
        .find(|f| f.path.ends_with("seccomp"))
        .unwrap();
    assert_eq!(
        String::from_utf8(seccomp.contents.clone()).unwrap(),
        "2\nallowlist errno 38\n[all]\nread allow\nwrite allow\npersonality allow [0,8,SCMP_CMP_EQ,0]\nkill log\n"
    );
    let p = ProcessFile::decode(
        &t.files()
            .iter()
            .find(|f| f.path.ends_with("process"))
            .unwrap()
            .contents,
    )
    .unwrap();
    assert_eq!(p.args, ["sh", "-c", "echo 'a b'", ""]);
    assert_eq!(p.env, ["PATH=/bin", "SPACE=trail  "]);
    assert_eq!((p.cwd.as_str(), p.umask), ("/srv", Some(0o22)));
    assert_eq!(t.poststart_hooks().len(), 1);
    assert_eq!(t.poststop_hooks().len(), 1);
    // Capabilities are a set: sorted, whatever the order in the spec.
    assert_eq!(
        t.config().get("lxc.cap.keep"),
        Some("chown net_raw sys_admin")
    );
    // The symlink in the destination was followed inside the rootfs.
    assert!(t
        .config()
        .values("lxc.mount.entry")
        .any(|e| e.contains(" real/data none rbind,ro,rprivate,create=dir ")));
}

#[test]
fn prepare_writes_files_and_creates_targets() {
    let dir = fixture();
    // Without linux.devices: making device nodes needs root (tests/lxc.rs covers them).
    let mut value = everything();
    value["linux"].as_object_mut().unwrap().remove("devices");
    let spec = spec_from(value);
    let t = translate(dir.path(), &spec).unwrap();
    t.prepare().unwrap();
    let init = dir.path().join("files/init");
    assert_eq!(
        fs::read(&init).unwrap(),
        proxcage_lxc_config::init::EXECUTABLE
    );
    assert!(dir.path().join("rootfs/.proxcage/process").is_file());
    assert!(dir.path().join("rootfs/with space").is_dir());
    assert!(dir.path().join("rootfs/real/data").is_dir());
    assert!(dir.path().join("rootfs/etc/file.txt").is_file());
    t.prepare().unwrap();
}

#[test]
fn without_init_uses_lxc_keys_and_refuses_what_they_would_change() {
    let dir = fixture();
    let mut value = runc_default();
    value["process"]["args"] = json!(["sleep", "10"]);
    value["process"]["cwd"] = json!("/tmp");
    let spec = spec_from(value.clone());
    let t = from_oci(&spec, &paths(dir.path(), &spec).without_init()).unwrap();
    assert_eq!(t.config().get("lxc.init.cmd"), Some("sleep 10"));
    assert_eq!(t.config().get("lxc.init.cwd"), Some("/tmp"));
    assert_eq!(t.config().values("lxc.environment").count(), 2);
    assert!(t.files().is_empty());

    value["process"]["args"] = json!(["sh", "-c", "echo 'a b'"]);
    let spec = spec_from(value.clone());
    let err = from_oci(&spec, &paths(dir.path(), &spec).without_init()).unwrap_err();
    assert_eq!(err.field(), "process.args[2]");

    value["process"]["args"] = json!(["true"]);
    value["process"]["env"] = json!(["T=x "]);
    let spec = spec_from(value);
    let err = from_oci(&spec, &paths(dir.path(), &spec).without_init()).unwrap_err();
    assert_eq!(err.field(), "process.env[0]");
}

/// The process file's capability sets for `value`, translated with a monitored init.
fn capability_sets(
    dir: &Path,
    value: Value,
) -> Result<Option<proxcage_lxc_config::CapabilitySets>, TranslateError> {
    let spec = spec_from(value);
    let t = from_oci(&spec, &paths(dir, &spec).monitored())?;
    let file = t.files().iter().find(|f| f.path.ends_with("process"));
    Ok(ProcessFile::decode(&file.unwrap().contents)
        .unwrap()
        .capabilities)
}

#[test]
fn inheritable_and_ambient_capabilities_are_the_inits_to_set() {
    let dir = fixture();
    // runtime-tools' bundles: every set the same.
    let all = json!(["CAP_CHOWN", "CAP_KILL", "CAP_SETUID"]);
    let mut value = runc_default();
    for set in [
        "bounding",
        "effective",
        "permitted",
        "inheritable",
        "ambient",
    ] {
        value["process"]["capabilities"][set] = all.clone();
    }
    let mask = 1 | 1 << 5 | 1 << 7;
    let sets = capability_sets(dir.path(), value.clone()).unwrap().unwrap();
    assert_eq!(
        (
            sets.effective,
            sets.permitted,
            sets.inheritable,
            sets.ambient
        ),
        (mask, mask, mask, mask)
    );
    // A non-root user: the init raises them after it switched users.
    value["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let sets = capability_sets(dir.path(), value.clone()).unwrap().unwrap();
    assert_eq!((sets.inheritable, sets.ambient), (mask, mask));
    // Ambient capabilities that are not inheritable cannot be raised: left out, as runc
    // leaves them out (its default spec asks for three of them).
    value["process"]["capabilities"]["inheritable"] = json!(["CAP_KILL"]);
    let sets = capability_sets(dir.path(), value.clone()).unwrap().unwrap();
    assert_eq!((sets.inheritable, sets.ambient), (1 << 5, 1 << 5));
    assert_eq!(capability_sets(dir.path(), runc_default()).unwrap(), None);

    // Where LXC switches users, or without the init, nothing can set them.
    let spec = spec_from(value.clone());
    let err = from_oci(&spec, &paths(dir.path(), &spec)).unwrap_err();
    assert_eq!(err.field(), "process.capabilities.inheritable", "{err}");
    value["process"]["user"] = json!({"uid": 0, "gid": 0});
    let spec = spec_from(value);
    let err = from_oci(&spec, &paths(dir.path(), &spec).without_init()).unwrap_err();
    assert_eq!(err.field(), "process.capabilities.inheritable", "{err}");
    assert!(err.to_string().contains("only proxcage-init"), "{err}");
}

#[test]
fn the_keep_list_comes_after_an_empty_drop_list() {
    let dir = fixture();
    let spec = proxcage_oci::default_spec(false);
    let t = translate(dir.path(), &spec).unwrap();
    let keys: Vec<_> = t
        .config()
        .entries()
        .iter()
        .filter(|e| e.key().starts_with("lxc.cap."))
        .map(|e| e.to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "lxc.cap.drop =",
            "lxc.cap.keep = audit_write kill net_bind_service"
        ]
    );
}

#[test]
fn apparmor_is_the_hosts_default_unless_the_spec_names_a_profile() {
    let dir = fixture();
    let spec = proxcage_oci::default_spec(false);
    let t = translate(dir.path(), &spec).unwrap();
    assert_eq!(t.config().get("lxc.apparmor.profile"), None);
    let mut value = runc_default();
    value["process"]["apparmorProfile"] = json!("unconfined");
    let spec = spec_from(value);
    let t = translate(dir.path(), &spec).unwrap();
    assert_eq!(t.config().get("lxc.apparmor.profile"), Some("unconfined"));
}

#[test]
fn a_masked_or_read_only_fifo_or_socket_is_refused_by_name() {
    let dir = fixture();
    let rootfs = dir.path().join("rootfs");
    nix::unistd::mkfifo(
        &rootfs.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(rootfs.join("socket")).unwrap();
    for (list, path, what) in [
        ("maskedPaths", "/fifo", "a FIFO"),
        ("readonlyPaths", "/fifo", "a FIFO"),
        ("maskedPaths", "/socket", "a socket"),
        ("readonlyPaths", "/socket", "a socket"),
    ] {
        let mut value = runc_default();
        value["linux"][list] = json!(["/etc", path]);
        let spec = spec_from(value);
        let err = translate(dir.path(), &spec).unwrap_err();
        assert_eq!(err.field(), format!("linux.{list}[1]"), "{err}");
        assert!(
            err.to_string().contains(&format!("{path} is {what}")),
            "{err}"
        );
    }
}

#[test]
fn unexpressible_fields_are_errors_that_name_them() {
    type Change = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Change)> = vec![
        ("domainname", Box::new(|s| s["domainname"] = json!("nis"))),
        (
            "process.ioPriority",
            Box::new(|s| {
                s["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0})
            }),
        ),
        (
            "process.scheduler",
            Box::new(|s| s["process"]["scheduler"] = json!({"policy": "SCHED_BATCH"})),
        ),
        (
            // The kernel takes no inheritable capability from outside the bounding set.
            "process.capabilities.inheritable",
            Box::new(|s| s["process"]["capabilities"]["inheritable"] = json!(["CAP_SYS_ADMIN"])),
        ),
        (
            "process.capabilities.effective",
            Box::new(|s| s["process"]["capabilities"]["effective"] = json!(["CAP_KILL"])),
        ),
        (
            "process.rlimits[1]",
            Box::new(
                |s| s["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}, {"type": "RLIMIT_NOFILE", "soft": 2, "hard": 2}]),
            ),
        ),
        (
            "mounts[7].options[0]",
            Box::new(|s| {
                s["mounts"].as_array_mut().unwrap().push(json!({"destination": "/x", "type": "tmpfs", "source": "tmpfs", "options": ["rro"]}))
            }),
        ),
        (
            "mounts[7].destination",
            Box::new(|s| {
                s["mounts"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"destination": "/../../x", "type": "tmpfs", "source": "tmpfs"}))
            }),
        ),
        (
            "mounts[7].source",
            Box::new(|s| {
                s["mounts"].as_array_mut().unwrap().push(json!({"destination": "/x", "type": "bind", "source": "/nonexistent/src", "options": ["bind"]}))
            }),
        ),
        (
            "linux.namespaces",
            Box::new(|s| s["linux"]["namespaces"] = json!([{"type": "pid"}])),
        ),
        (
            "linux.namespaces[0].path",
            Box::new(|s| {
                s["linux"]["namespaces"] = json!([{"type": "mount", "path": "/proc/1/ns/mnt"}])
            }),
        ),
        (
            "linux.uidMappings",
            Box::new(|s| {
                s["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}])
            }),
        ),
        (
            "linux.resources.memory.kernel",
            Box::new(|s| s["linux"]["resources"]["memory"] = json!({"kernel": 1000})),
        ),
        (
            "linux.resources.memory.swappiness",
            Box::new(|s| s["linux"]["resources"]["memory"] = json!({"swappiness": 10})),
        ),
        (
            "linux.resources.cpu.realtimeRuntime",
            Box::new(|s| s["linux"]["resources"]["cpu"] = json!({"realtimeRuntime": 1000})),
        ),
        (
            "linux.resources.blockIO.leafWeight",
            Box::new(|s| s["linux"]["resources"]["blockIO"] = json!({"leafWeight": 10})),
        ),
        (
            "linux.resources.network",
            Box::new(|s| s["linux"]["resources"]["network"] = json!({"classID": 1})),
        ),
        (
            "linux.seccomp.defaultAction",
            Box::new(|s| s["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_TRACE"})),
        ),
        (
            "linux.seccomp.listenerPath",
            Box::new(|s| {
                s["linux"]["seccomp"] =
                    json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"})
            }),
        ),
        (
            "linux.seccomp.flags",
            Box::new(|s| {
                s["linux"]["seccomp"] =
                    json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"]})
            }),
        ),
        (
            "linux.mountLabel",
            Box::new(|s| s["linux"]["mountLabel"] = json!("system_u:object_r:x:s0")),
        ),
        (
            "linux.intelRdt",
            Box::new(|s| s["linux"]["intelRdt"] = json!({"closID": "x"})),
        ),
        (
            "linux.cgroupsPath",
            Box::new(|s| s["linux"]["cgroupsPath"] = json!("system.slice:docker:abc")),
        ),
        (
            "linux.devices[0].type",
            Box::new(|s| {
                s["linux"]["devices"] =
                    json!([{"path": "/dev/fifo", "type": "p", "major": 0, "minor": 0}])
            }),
        ),
        (
            "linux.personality.flags",
            Box::new(|s| s["linux"]["personality"] = json!({"domain": "LINUX", "flags": ["x"]})),
        ),
        (
            "hooks.createContainer[0].args[0]",
            Box::new(|s| {
                s["hooks"] =
                    json!({"createContainer": [{"path": "/bin/hook", "args": ["other-name"]}]})
            }),
        ),
        ("hostname", Box::new(|s| s["hostname"] = json!("bad\nname"))),
        (
            "hooks.startContainer[0]",
            Box::new(|s| {
                s["hooks"] =
                    json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "true"]}]})
            }),
        ),
    ];
    let dir = fixture();
    for (field, change) in cases {
        let mut value = runc_default();
        change(&mut value);
        let spec = spec_from(value);
        let err = match translate(dir.path(), &spec) {
            Ok(_) => panic!("{field}: translated without error"),
            Err(err) => err,
        };
        assert_eq!(err.field(), field, "{err}");
        assert!(err.to_string().starts_with(field), "{err}");
    }
}

fn spec_strategy() -> impl Strategy<Value = Value> {
    let arg = "[ -~]{0,12}";
    (
        proptest::collection::vec(arg, 1..5),
        proptest::collection::vec("[A-Z]{1,4}=[ -~]{0,8}", 0..4),
        proptest::option::of("[a-z][a-z0-9-]{0,10}"),
        proptest::collection::vec(("/[a-z]{1,6}(/[a-z ]{1,6}){0,2}", "[0-9]{1,4}[kmg]?"), 0..4),
        proptest::collection::btree_map("(kernel|net)\\.[a-z_]{1,8}", "[0-9a-z]([0-9a-z ]{0,6}[0-9a-z])?", 0..3),
        (0u64..4096, 0u64..4096, proptest::option::of(1i64..1 << 40)),
    )
        .prop_map(|(args, env, hostname, tmpfs, sysctl, (soft, extra, memory))| {
            let mut spec = runc_default();
            spec["process"]["args"] = json!(args);
            spec["process"]["env"] = json!(env);
            spec["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": soft, "hard": soft + extra}]);
            if let Some(h) = hostname {
                spec["hostname"] = json!(h);
            }
            for (dest, size) in tmpfs {
                spec["mounts"].as_array_mut().unwrap().push(json!({
                    "destination": dest, "type": "tmpfs", "source": "tmpfs", "options": [format!("size={size}"), "nosuid"]
                }));
            }
            spec["linux"]["sysctl"] = json!(sysctl);
            if let Some(m) = memory {
                spec["linux"]["resources"]["memory"] = json!({"limit": m});
            }
            spec
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_valid_spec_renders_to_a_config_that_parses_back(value in spec_strategy()) {
        let dir = fixture();
        let spec = spec_from(value);
        let t = translate(dir.path(), &spec).unwrap();
        prop_assert_eq!(&LxcConfig::parse(&t.config().render()).unwrap(), t.config());
        let process = t.files().iter().find(|f| f.path.ends_with("process")).unwrap();
        let p = ProcessFile::decode(&process.contents).unwrap();
        prop_assert_eq!(Some(&p.args), spec.process().as_ref().unwrap().args().as_ref());
    }

    #[test]
    fn no_panic_on_any_spec_text(
        hostname in "\\PC{0,10}",
        dest in "\\PC{0,20}",
        opt in "\\PC{0,10}",
        ns in "(mount|pid|network|user|cgroup|ipc|uts|time)",
    ) {
        let dir = fixture();
        let mut value = runc_default();
        value["hostname"] = json!(hostname);
        value["mounts"].as_array_mut().unwrap().push(json!({"destination": dest, "type": "tmpfs", "source": "x", "options": [opt]}));
        value["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": ns}));
        if let Ok(spec) = serde_json::from_value::<Spec>(value) {
            let _ = translate(dir.path(), &spec);
        }
    }
}
