//! Real LXC runs of translated bundles: a busybox bundle's config.json goes through
//! `proxcage_lxc_config::from_oci`, LXC starts the result (`lxc-start -F`, `lxc-execute`),
//! and the container itself reports what it got. Needs root and LXC (`apt-get install -y
//! lxc busybox-static`); fails, never skips, without them.
//!
//! This host ignores cgroup v2 limits (hybrid cgroup layout): those are checked by
//! `lxc-info -c`, which parses the config without starting it.

use proxcage_test_support as support;
use serde_json::json;
use support::lxc::LxcBundle;

/// A container that runs `sh -c script`.
fn sh(script: &str) -> LxcBundle {
    LxcBundle::new(&["sh", "-c", script])
}

#[test]
fn argv_reaches_the_process_byte_for_byte() {
    let b = LxcBundle::new(&[
        "sh",
        "-c",
        "printf '%s|' \"$@\"",
        "x",
        "a b",
        "'q'",
        "",
        "$HOME",
    ]);
    assert_eq!(b.stdout(), "a b|'q'||$HOME|");

    let b = LxcBundle::new(&["sh", "-c", "echo 'a b'  \"c\\\\d\" \"$0\"", "z\t$x"]);
    assert_eq!(b.stdout(), "a b c\\d z\t$x\n");
}

#[test]
fn environment_keeps_trailing_blanks_and_cwd_is_set() {
    let b = sh("printf '[%s][%s]' \"$T\" \"$E\"; pwd; umask");
    b.edit(|spec| {
        spec["process"]["env"] = json!(["PATH=/bin", "T=trailing  ", "E=", "T2=x"]);
        spec["process"]["cwd"] = json!("/etc");
        spec["process"]["user"]["umask"] = json!(0o27);
    });
    assert_eq!(b.stdout(), "[trailing  ][]/etc\n0027\n");
}

#[test]
fn user_groups_and_no_capabilities_for_non_root() {
    let b = sh("id -u; id -g; id -G; grep -E '^Cap(Eff|Prm)' /proc/self/status");
    b.edit(|spec| {
        spec["process"]["user"] = json!({"uid": 65534, "gid": 65534, "additionalGids": [10, 20]});
        spec["process"]["capabilities"]["effective"] = json!([]);
        spec["process"]["capabilities"]["permitted"] = json!([]);
        spec["process"]["capabilities"]["ambient"] = json!([]);
    });
    assert_eq!(
        b.stdout(),
        "65534\n65534\n65534 10 20\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"
    );
}

#[test]
fn hostname_is_set() {
    let b = sh("hostname");
    b.edit(|spec| spec["hostname"] = json!("web-1"));
    assert_eq!(b.stdout(), "web-1\n");
}

#[test]
fn capabilities_are_the_bounding_set() {
    let b = sh("grep -E '^Cap(Bnd|Eff|Prm)' /proc/self/status");
    // runc's default: AUDIT_WRITE (29), KILL (5), NET_BIND_SERVICE (10).
    assert_eq!(
        b.stdout(),
        "CapPrm:\t0000000020000420\nCapEff:\t0000000020000420\nCapBnd:\t0000000020000420\n"
    );
    let b = sh("grep -E '^CapBnd' /proc/self/status");
    b.edit(|spec| {
        for set in ["bounding", "effective", "permitted"] {
            spec["process"]["capabilities"][set] = json!(["CAP_SYS_ADMIN", "CAP_CHOWN"]);
        }
        spec["process"]["capabilities"]["ambient"] = json!([]);
    });
    // CHOWN (0) and SYS_ADMIN (21).
    assert_eq!(b.stdout(), "CapBnd:\t0000000000200001\n");
}

#[test]
fn rlimits_are_lowered_and_no_new_privs_is_set() {
    let b = sh("grep -E 'Max (open files|processes)' /proc/self/limits | tr -s ' '; grep NoNewPrivs /proc/self/status");
    b.edit(|spec| {
        spec["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
            {"type": "RLIMIT_NPROC", "soft": 50, "hard": 60}
        ]);
    });
    assert_eq!(
        b.stdout(),
        "Max processes 50 60 processes \nMax open files 100 200 files \nNoNewPrivs:\t1\n"
    );
    let b = sh("grep NoNewPrivs /proc/self/status");
    b.edit(|spec| spec["process"]["noNewPrivileges"] = json!(false));
    assert_eq!(b.stdout(), "NoNewPrivs:\t0\n");
}

#[test]
fn mounts_keep_their_options() {
    let b = sh(concat!(
        "for m in /data '/rw\\040data' /scratch; do grep -F \" $m \" /proc/mounts | cut -d' ' -f2,3,4 | ",
        "sed -E 's/,(relatime|discard|resv_strict|resuid=[0-9]+|resgid=[0-9]+|errors=[a-z-]+)//g'; done; ",
        "cat /data/hello; ",
        "touch /data/new 2>/dev/null && echo data-writable || echo data-read-only; ",
        "touch '/rw data/new' && echo rw-writable; ",
        "touch /scratch/new && echo scratch-writable"
    ));
    let data = b.bundle.join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("hello"), "hi\n").unwrap();
    let rw = b.dir.path().join("rw src");
    std::fs::create_dir(&rw).unwrap();
    let rw_source = rw.to_str().unwrap().to_string();
    b.edit(|spec| {
        let mounts = spec["mounts"].as_array_mut().unwrap();
        mounts.push(json!({"destination": "/data", "type": "bind", "source": "data", "options": ["rbind", "ro", "nosuid"]}));
        mounts.push(json!({"destination": "/rw data", "type": "bind", "source": rw_source, "options": ["bind", "rw", "nodev"]}));
        mounts.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "mode=700", "noexec"]}));
    });
    let out = b.stdout();
    assert_eq!(
        out,
        concat!(
            "/data ext4 ro,nosuid\n",
            // LXC 5.0.2 does not apply nodev to a read-write bind (it skips the
            // remount); the entry asks for it. When this fails because nodev appears,
            // LXC got fixed: expect `rw,nodev` here.
            "/rw\\040data ext4 rw\n",
            "/scratch tmpfs rw,noexec,size=1024k,mode=700\n",
            "hi\ndata-read-only\nrw-writable\nscratch-writable\n"
        ),
        "{out}"
    );
    assert!(
        rw.join("new").exists(),
        "a write through the rw bind reaches the host"
    );
    assert!(!data.join("new").exists());
}

#[test]
fn read_only_root_masked_and_read_only_paths() {
    let b = sh(concat!(
        "touch /etc/x 2>/dev/null && echo root-writable || echo root-read-only; ",
        "touch /dev/shm/x && echo shm-writable; ",
        "wc -c < /proc/keys; ls /proc/acpi | wc -l; ",
        "echo 1 2>/dev/null > /proc/sys/kernel/ns_last_pid && echo sys-writable || echo sys-read-only; ",
        "grep -E ' /proc/(sys|acpi|keys) ' /proc/mounts | cut -d' ' -f2,4 | cut -d, -f1"
    ));
    let out = b.stdout();
    assert_eq!(
        out,
        concat!(
            "root-read-only\nshm-writable\n0\n0\nsys-read-only\n",
            "/proc/acpi ro\n/proc/keys rw\n/proc/sys ro\n"
        ),
        "{out}"
    );
}

#[test]
fn seccomp_profile_is_applied() {
    let b = sh("mkdir /dev/shm/d 2>&1 || echo denied; touch /dev/shm/f && echo touch-ok");
    b.edit(|spec| {
        spec["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
    });
    let out = b.stdout();
    assert!(out.ends_with("denied\ntouch-ok\n"), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
}

#[test]
fn lxc_execute_runs_the_init_and_returns_the_exit_status() {
    let b = LxcBundle::new(&["sh", "-c", "printf '%s|' \"$@\"; exit 7", "x", "a  b", ""]);
    let out = b.execute(&["/.proxcage/init"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a  b||");
    assert_eq!(
        out.status.code(),
        Some(7),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cgroup_limits_are_written_and_parse_in_lxc() {
    let b = sh("true");
    b.edit(|spec| {
        spec["linux"]["resources"]["memory"] = json!({"limit": 268435456, "reservation": 134217728, "swap": 536870912});
        spec["linux"]["resources"]["cpu"] = json!({"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"});
        spec["linux"]["resources"]["pids"] = json!({"limit": 64});
        spec["linux"]["resources"]["blockIO"] = json!({"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]});
        spec["linux"]["resources"]["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 0}]);
        spec["linux"]["resources"]["unified"] = json!({"memory.high": "200000000"});
    });
    let t = b.translate();
    let expected = [
        ("lxc.cgroup2.memory.max", "268435456"),
        ("lxc.cgroup2.memory.low", "134217728"),
        ("lxc.cgroup2.memory.swap.max", "268435456"),
        ("lxc.cgroup2.cpu.weight", "39"),
        ("lxc.cgroup2.cpu.max", "50000 100000"),
        ("lxc.cgroup2.cpuset.cpus", "0"),
        ("lxc.cgroup2.cpuset.mems", "0"),
        ("lxc.cgroup2.pids.max", "64"),
        ("lxc.cgroup2.io.weight", "4950"),
        ("lxc.cgroup2.io.max", "8:0 rbps=1048576"),
        ("lxc.cgroup2.hugetlb.2MB.max", "0"),
        ("lxc.cgroup2.memory.high", "200000000"),
    ];
    for (key, value) in expected {
        assert_eq!(t.config().get(key), Some(value), "{key}");
        let out = b.lxc_info(&t, key);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.trim() == format!("{key} = {value}"),
            "lxc-info -c {key}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // And LXC starts it (ignoring the v2 limits on this host, with a warning).
    assert!(b.start_with(&t).status.success());
}

#[test]
fn the_everything_golden_config_is_accepted_by_lxc() {
    support::require_root();
    support::require_tool("lxc-info", "lxc");
    let golden = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/everything.conf");
    let dir = tempfile::Builder::new()
        .prefix("proxcage-lxc-")
        .tempdir()
        .unwrap();
    let text = std::fs::read_to_string(golden)
        .unwrap()
        .replace("$DIR", dir.path().to_str().unwrap());
    let config = dir.path().join("config");
    std::fs::write(&config, &text).unwrap();
    for key in [
        "lxc.uts.name",
        "lxc.arch",
        "lxc.time.offset.boot",
        "lxc.hook.mount",
        "lxc.mount.entry",
    ] {
        let out = support::run_with_files(
            std::process::Command::new("lxc-info")
                .args(["-n", "everything", "-P"])
                .arg(dir.path())
                .arg("--rcfile")
                .arg(&config)
                .args(["-c", key]),
            &dir.path().join("out"),
        );
        assert!(
            out.status.success(),
            "lxc-info cannot load the config ({key}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn devices_are_bound_from_the_host_and_allowed() {
    let b = sh("stat -c '%t:%T %F' /dev/mynull; echo x > /dev/mynull && echo written");
    b.edit(|spec| {
        spec["linux"]["devices"] =
            json!([{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3}]);
    });
    assert_eq!(b.stdout(), "1:3 character special file\nwritten\n");
}

#[test]
fn hooks_run_on_the_host_and_in_the_container() {
    let b = sh("cat /dev/shm/started");
    // A start hook runs inside the container, as a bare path (LXC's rule).
    let hook = b.rootfs().join("bin/start-hook");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho started in $(hostname) > /dev/shm/started\n",
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let marker = b.dir.path().join("created runtime");
    let script = format!("printf '%s' \"$0\" > '{}'", marker.display());
    b.edit(|spec| {
        spec["hooks"] = json!({
            "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", script, "it's ok"], "timeout": 10}],
            "startContainer": [{"path": "/bin/start-hook"}]
        });
    });
    assert_eq!(b.stdout(), "started in runc\n");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "it's ok");
}

#[test]
fn a_namespace_the_spec_leaves_out_is_the_callers() {
    let host_interfaces = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .count();
    let b = sh("wc -l < /proc/net/dev; hostname");
    b.edit(|spec| {
        let namespaces = spec["linux"]["namespaces"].as_array_mut().unwrap();
        namespaces.retain(|ns| ns["type"] != "network" && ns["type"] != "uts");
        spec.as_object_mut().unwrap().remove("hostname");
    });
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host_name = host_name.trim_end();
    assert_eq!(b.stdout(), format!("{host_interfaces}\n{host_name}\n"));
}
