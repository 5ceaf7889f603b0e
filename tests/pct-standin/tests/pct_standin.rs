//! The pct stand-in (test code that plays Proxmox's `pct` and `pvesh`, see
//! `tests/pct-standin`) against `shared/reference/pct.md`, with real LXC containers: the
//! lifecycle, the templates, every error message of the reference, and the VMID races.
//! Needs root and LXC; fails naming what to install when they are missing.

use proxcage_test_support as support;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use support::pct::{stderr, stdout, PctStandin};

/// Asserts a failed command: exit 255, `msg` on stderr (a line of it), nothing on stdout
/// unless `stdout_ok`.
#[track_caller]
fn fails_with(out: &Output, msg: &str) {
    assert_eq!(
        out.status.code(),
        Some(255),
        "expected exit 255 with {msg:?}, got {}:\nstdout: {}\nstderr: {}",
        out.status,
        stdout(out),
        stderr(out)
    );
    let err = stderr(out);
    assert!(
        err.lines().any(|l| l == msg),
        "stderr lacks the line {msg:?}:\n{err}"
    );
}

/// Waits up to 10 s for `cond`.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn nextid(pct: &PctStandin) -> u32 {
    pct.pvesh_ok(&["get", "/cluster/nextid"])
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn lifecycle_of_an_unprivileged_busybox_container() {
    let pct = PctStandin::new();
    let template = pct.busybox_template("busybox.tar.zst", |_| {});
    let ro_dir = pct.dir.path().join("ro");
    let rw_dir = pct.dir.path().join("rw");
    fs::create_dir_all(&ro_dir).unwrap();
    fs::create_dir_all(&rw_dir).unwrap();
    fs::write(ro_dir.join("file"), "from the host\n").unwrap();
    // The container's root is uid 100000 on the host.
    std::os::unix::fs::chown(&rw_dir, Some(100_000), Some(100_000)).unwrap();

    assert_eq!(
        pct.pct_ok(&["list"]),
        "",
        "pct list prints nothing when empty"
    );
    let vmid = nextid(&pct);
    assert_eq!(vmid, 100);
    let id = vmid.to_string();
    let mp0 = format!("{},mp=/data,ro=1", ro_dir.display());
    let mp1 = format!("{},mp=/rw", rw_dir.display());
    let out = pct.pct_ok(&[
        "create",
        &id,
        &template,
        "--rootfs",
        "local-lvm:1",
        "--ostype",
        "unmanaged",
        "--hostname",
        "bb1",
        "--entrypoint",
        "/bin/sh /start.sh",
        "--mp0",
        &mp0,
        "--mp1",
        &mp1,
        "--tags",
        "proxcage",
        "--description",
        "oci id: abc\nsecond line",
        "--memory",
        "256",
        "--cores",
        "1",
    ]);
    assert!(out.contains("extracting archive"), "task output: {out}");

    // The .conf as pct writes it: description on top, keys sorted.
    let conf = fs::read_to_string(pct.conf_path(vmid)).unwrap();
    let expected = format!(
        "#oci id%3A abc\n#second line\narch: amd64\ncores: 1\nentrypoint: /bin/sh /start.sh\nhostname: bb1\nmemory: 256\nmp0: {mp0}\nmp1: {mp1}\nostype: unmanaged\nrootfs: local-lvm:vm-100-disk-0,size=1G\nswap: 512\ntags: proxcage\nunprivileged: 1\n"
    );
    assert_eq!(conf, expected);
    assert!(
        pct.root.join("etc/pve/lxc/100.conf").exists(),
        "etc/pve/lxc links to the node"
    );

    // The rootfs is shifted by 100000.
    let disk = pct.root.join("images/local-lvm/vm-100-disk-0");
    let busybox = fs::metadata(disk.join("bin/busybox")).unwrap();
    assert_eq!((busybox.uid(), busybox.gid()), (100_000, 100_000));

    assert_eq!(pct.pct_ok(&["status", &id]), "status: stopped\n");
    // Started with pipes, as a backend's Command::output() does: the daemonised
    // container must not keep them open, or this would hang.
    let started = Instant::now();
    let out = pct.cmd("pct").args(["start", &id]).output().unwrap();
    let start_time = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        start_time < Duration::from_secs(20),
        "pct start took {start_time:?}"
    );

    // The generated LXC config.
    let lxc_conf = fs::read_to_string(pct.lxcpath().join("100/config")).unwrap();
    for line in [
        "lxc.idmap = u 0 100000 65536",
        "lxc.idmap = g 0 100000 65536",
        "lxc.uts.name = bb1",
        "lxc.init.cmd = /bin/sh /start.sh",
        "lxc.cgroup2.memory.max = 268435456",
    ] {
        assert!(
            lxc_conf.lines().any(|l| l == line),
            "{line} missing:\n{lxc_conf}"
        );
    }

    // Output in the console log, a real host PID, not our child.
    let log = pct.lxcpath().join("100/console.log");
    wait_for("hello in the console log", || {
        fs::read_to_string(&log).is_ok_and(|l| l.contains("hello from bb1"))
    });
    assert_eq!(pct.pct_ok(&["status", &id]), "status: running\n");
    let pid = pct.lxc_pid(vmid).expect("lxc-info shows the init's PID");
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid: u32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(ppid, std::process::id(), "the init is not the test's child");
    let status: serde_json::Value = serde_json::from_str(&pct.pvesh_ok(&[
        "get",
        "/nodes/pve/lxc/100/status/current",
        "--output-format",
        "json",
    ]))
    .unwrap();
    assert_eq!(status["status"], "running");
    assert_eq!(status["pid"], pid);
    assert_eq!(status["vmid"], 100);
    assert_eq!(status["name"], "bb1");
    assert_eq!(
        pct.pct_ok(&["list"]),
        "VMID       Status     Lock         Name                \n100        running                 bb1                 \n"
    );
    let verbose = pct.pct_ok(&["status", &id, "--verbose", "1"]);
    assert!(verbose.contains(&format!("pid: {pid}\n")), "{verbose}");
    assert!(
        verbose.contains("status: running\n") && verbose.contains("name: bb1\n"),
        "{verbose}"
    );
    let all: serde_json::Value =
        serde_json::from_str(&pct.pvesh_ok(&["get", "/nodes/pve/lxc", "--output-format", "json"]))
            .unwrap();
    assert_eq!(all[0]["vmid"], 100);
    assert_eq!(all[0]["status"], "running");

    // exec: exit codes pass through; the ro bind mount refuses writes; the rw one works.
    let out = pct.pct(&["exec", &id, "--", "sh", "-c", "cat /data/file; exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stdout(&out), "from the host\n");
    let out = pct.pct(&["exec", &id, "--", "sh", "-c", "echo x > /data/new"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
    assert!(!ro_dir.join("new").exists());
    pct.pct_ok(&["exec", &id, "--", "sh", "-c", "echo y > /rw/new"]);
    assert_eq!(fs::read_to_string(rw_dir.join("new")).unwrap(), "y\n");
    assert_eq!(fs::metadata(rw_dir.join("new")).unwrap().uid(), 100_000);
    assert_eq!(pct.pct_ok(&["exec", &id, "--", "hostname"]), "bb1\n");
    // --keep-env (default 1) passes the caller's environment, --keep-env 0 clears it.
    let env_of = |keep: &str| {
        let out = support::run_with_files(
            pct.cmd("pct").env("PCT_TEST_VAR", "seen").args([
                "exec",
                &id,
                "--keep-env",
                keep,
                "--",
                "sh",
                "-c",
                "echo ${PCT_TEST_VAR:-unset}",
            ]),
            &pct.dir.path().join("out"),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(env_of("1"), "seen\n");
    assert_eq!(env_of("0"), "unset\n");

    pct.pct_ok(&["stop", &id]);
    assert_eq!(pct.pct_ok(&["status", &id]), "status: stopped\n");
    wait_for("the init to go", || support::process_gone(pid));
    assert_eq!(pct.lxc_pid(vmid), None);

    // mount: the rootfs at <lxcpath>/<vmid>/rootfs, lock `mounted` until unmount.
    let out = pct.pct_ok(&["mount", &id]);
    let mounted = pct.lxcpath().join("100/rootfs");
    assert_eq!(out, format!("mounted CT 100 in '{}'\n", mounted.display()));
    assert!(mounted.join("start.sh").exists());
    fails_with(&pct.pct(&["start", &id]), "CT is locked (mounted)");
    pct.pct_ok(&["unmount", &id]);
    assert!(!mounted.join("start.sh").exists());
    assert!(!fs::read_to_string(pct.conf_path(vmid))
        .unwrap()
        .contains("lock"));

    pct.pct_ok(&["destroy", &id, "--purge", "1"]);
    assert!(!pct.conf_path(vmid).exists());
    assert!(!disk.exists(), "the volume is gone");
    assert!(!pct.lxcpath().join("100").exists());
    assert_eq!(pct.pct_ok(&["list"]), "");
    assert_eq!(pct.leftover_cgroups(), Vec::<std::path::PathBuf>::new());
    assert!(ro_dir.join("file").exists(), "bind mount sources stay");
    eprintln!("pct start took {start_time:?}");
}

#[test]
fn raw_lxc_keys_pass_the_allow_list_and_others_are_dropped() {
    let pct = PctStandin::new();
    let template = pct.busybox_template("raw.tar.gz", |_| {});
    pct.pct_ok(&[
        "create",
        "100",
        &template,
        "--rootfs",
        "local-lvm:0.5",
        "--ostype",
        "unmanaged",
        "--mp0",
        "local-lvm:0.1,mp=/vol,backup=1",
        "--tags",
        "b;a;b",
        "--description",
        "first\n\nthird",
    ]);
    let conf_path = pct.conf_path(100);
    let mut conf = fs::read_to_string(&conf_path).unwrap();
    assert_eq!(
        conf,
        "#first\n#\n#third\narch: amd64\nhostname: CT100\nmemory: 512\nmp0: local-lvm:vm-100-disk-1,backup=1,mp=/vol,size=102M\nostype: unmanaged\nrootfs: local-lvm:vm-100-disk-0,size=512M\nswap: 512\ntags: a;b\nunprivileged: 1\n",
        "rootfs allocated first; tags sorted and unique; empty description lines kept"
    );
    let vol = pct.root.join("images/local-lvm/vm-100-disk-1");
    assert_eq!(
        fs::metadata(&vol).unwrap().uid(),
        100_000,
        "a new volume belongs to the CT's root"
    );
    conf = conf
        .replace("#first\n#\n#third\n", "")
        .replace(
            "mp0: local-lvm:vm-100-disk-1,backup=1,mp=/vol,size=102M\n",
            "",
        )
        .replace("tags: a;b\n", "");
    // The volume stays a leftover for destroy to find: keep mp0 as `unused0`.
    conf.push_str("unused0: local-lvm:vm-100-disk-1\n");
    conf.push_str(
        "lxc.init.cmd: /bin/sh /start.sh\nlxc.rootfs.path: /elsewhere\nlxc.no_new_privs: 1\nlxc.environment = FOO=bar\n",
    );
    fs::write(&conf_path, &conf).unwrap();

    // config: sorted keys, then raw keys in file order; warnings on stderr.
    let out = pct.pct(&["config", "100"]);
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        "arch: amd64\nhostname: CT100\nmemory: 512\nostype: unmanaged\nrootfs: local-lvm:vm-100-disk-0,size=512M\nswap: 512\nunprivileged: 1\nunused0: local-lvm:vm-100-disk-1\nlxc.init.cmd: /bin/sh /start.sh\nlxc.environment: FOO=bar\n"
    );
    assert_eq!(
        stderr(&out),
        "vm 100 - lxc.rootfs.path: lxc.rootfs.path is auto generated from rootfs\nvm 100 - unable to parse config: lxc.no_new_privs: 1\n"
    );

    // start: the same warnings, on stdout (task output); allowed keys appended.
    let out = pct.pct(&["start", "100"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("vm 100 - unable to parse config: lxc.no_new_privs: 1"));
    assert_eq!(stderr(&out), "");
    let lxc_conf = fs::read_to_string(pct.lxcpath().join("100/config")).unwrap();
    let tail: Vec<&str> = lxc_conf.lines().rev().take(2).collect();
    assert_eq!(
        tail,
        [
            "lxc.environment = FOO=bar",
            "lxc.init.cmd = /bin/sh /start.sh"
        ]
    );
    assert!(!lxc_conf.contains("/elsewhere") && !lxc_conf.contains("no_new_privs"));
    assert_eq!(
        pct.pct_ok(&["exec", "100", "--", "sh", "-c", "echo $FOO"]),
        "bar\n"
    );

    // The CLI cannot write raw keys.
    let out = pct.pct(&["set", "100", "--lxc.init.cmd", "/bin/true"]);
    fails_with(&out, "Unknown option: lxc.init.cmd");
    // set keeps the raw lines and the description.
    pct.pct_ok(&["set", "100", "--description", "a:b", "--swap", "0"]);
    let conf = fs::read_to_string(&conf_path).unwrap();
    assert!(conf.starts_with("#a%3Ab\n"), "{conf}");
    assert!(conf.contains("swap: 0\n"));
    assert!(
        conf.ends_with("lxc.init.cmd: /bin/sh /start.sh\nlxc.environment: FOO=bar\n"),
        "{conf}"
    );
    pct.pct_ok(&["set", "100", "--delete", "description,swap"]);
    let conf = fs::read_to_string(&conf_path).unwrap();
    assert!(!conf.contains('#') && !conf.contains("swap"), "{conf}");

    pct.pct_ok(&["destroy", "100", "--force", "1"]);
    assert!(!conf_path.exists());
    assert!(!vol.exists(), "unused volumes go with the CT");
    assert_eq!(pct.leftover_cgroups(), Vec::<std::path::PathBuf>::new());
}

#[test]
fn templates_of_every_compression_keep_files_and_shift_owners() {
    let pct = PctStandin::new();
    let tweak = |rootfs: &Path| {
        fs::write(rootfs.join("suid"), "x").unwrap();
        // chown clears setuid bits: chmod after it.
        std::os::unix::fs::chown(rootfs.join("suid"), Some(1234), Some(5678)).unwrap();
        fs::set_permissions(rootfs.join("suid"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::hard_link(rootfs.join("suid"), rootfs.join("hardlink")).unwrap();
        std::os::unix::fs::symlink("suid", rootfs.join("symlink")).unwrap();
        set_xattr(&rootfs.join("etc/passwd"), "user.proxcage", "kept");
    };
    support::require_tool("gzip", "gzip");
    support::require_tool("xz", "xz-utils");
    support::require_tool("bzip2", "bzip2");
    let formats = ["t.tar", "t.tar.gz", "t.tar.xz", "t.tar.zst", "t.tar.bz2"];
    for (i, file) in formats.iter().enumerate() {
        let template = pct.busybox_template(file, tweak);
        for unprivileged in ["0", "1"] {
            let vmid = 100 + i * 2 + usize::from(unprivileged == "1");
            let id = vmid.to_string();
            pct.pct_ok(&[
                "create",
                &id,
                &template,
                "--rootfs",
                "local-lvm:1",
                "--ostype",
                "unmanaged",
                "--unprivileged",
                unprivileged,
            ]);
            let disk = pct.root.join(format!("images/local-lvm/vm-{vmid}-disk-0"));
            let shift = if unprivileged == "1" { 100_000 } else { 0 };
            let meta = fs::metadata(disk.join("suid")).unwrap();
            assert_eq!(
                (meta.uid(), meta.gid()),
                (1234 + shift, 5678 + shift),
                "{file}"
            );
            assert_eq!(meta.mode() & 0o7777, 0o4755, "{file}: setuid kept");
            assert_eq!(
                meta.ino(),
                fs::metadata(disk.join("hardlink")).unwrap().ino()
            );
            assert_eq!(
                fs::read_link(disk.join("symlink")).unwrap(),
                Path::new("suid")
            );
            let root_dir = fs::metadata(&disk).unwrap();
            assert_eq!(
                root_dir.uid(),
                shift,
                "{file}: the rootfs belongs to the CT's root"
            );
            assert_eq!(
                get_xattr(&disk.join("etc/passwd"), "user.proxcage"),
                "kept",
                "{file}: xattr"
            );
            let conf = fs::read_to_string(pct.conf_path(vmid as u32)).unwrap();
            assert_eq!(
                conf.contains("unprivileged: 1"),
                unprivileged == "1",
                "{conf}"
            );
        }
    }
    for vmid in 100..100 + formats.len() * 2 {
        pct.pct_ok(&["destroy", &vmid.to_string()]);
    }
    assert_eq!(
        fs::read_dir(pct.root.join("images/local-lvm"))
            .unwrap()
            .count(),
        0
    );
}

fn set_xattr(path: &Path, name: &str, value: &str) {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid C strings and a buffer of the given length.
    let rc = unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        rc,
        0,
        "setxattr {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

fn get_xattr(path: &Path, name: &str) -> String {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = [0u8; 256];
    // SAFETY: valid C strings and a buffer of the given length.
    let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(
        len >= 0,
        "getxattr {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    String::from_utf8_lossy(&buf[..len as usize]).into_owned()
}

#[test]
fn every_error_of_the_reference() {
    let pct = PctStandin::new();
    let template = pct.busybox_template("err.tar.zst", |_| {});
    let ok_create = |id: &str| {
        pct.pct_ok(&[
            "create",
            id,
            &template,
            "--rootfs",
            "local-lvm:1",
            "--ostype",
            "unmanaged",
            "--entrypoint",
            "/bin/sh /start.sh",
        ])
    };

    // Parameter checks, all fields at once, with the usage line.
    let out = pct.pct(&["create", "99", &template]);
    fails_with(&out, "400 Parameter verification failed.");
    fails_with(
        &out,
        "vmid: invalid format - value does not look like a valid VM ID",
    );
    fails_with(&out, "pct create <vmid> <ostemplate> [OPTIONS]");
    let out = pct.pct(&[
        "create",
        "100",
        &template,
        "--memory",
        "8",
        "--cores",
        "abc",
        "--hostname",
        "a_b",
        "--ostype",
        "suse",
        "--tags",
        "Bad",
        "--unprivileged",
        "maybe",
        "--net0",
        "bridge=vmbr0",
    ]);
    for line in [
        "memory: value must have a minimum value of 16",
        "cores: type check ('integer') failed - got 'abc'",
        "hostname: invalid format - value does not look like a valid DNS name",
        "ostype: value 'suse' does not have a value in the enumeration 'debian, devuan, ubuntu, centos, fedora, opensuse, archlinux, alpine, gentoo, nixos, unmanaged'",
        "tags: invalid format - invalid characters in tag 'Bad'",
        "unprivileged: type check ('boolean') failed - got 'maybe'",
        "net0: invalid format - format error",
        "net0.name: property is missing and it is not optional",
    ] {
        fails_with(&out, line);
    }
    fails_with(
        &pct.pct(&["create", "100", &template, "--cpulimit", "9000"]),
        "cpulimit: value must have a maximum value of 8192",
    );

    // Storage and template errors leave nothing behind.
    let out = pct.pct(&["create", "100", &template]);
    fails_with(
        &out,
        "storage: storage 'local' does not support container directories",
    );
    fails_with(
        &pct.pct(&["create", "100", &template, "--storage", "nope"]),
        "storage 'nope' does not exist",
    );
    fails_with(
        &pct.pct(&["create", "100", &template, "--rootfs", "nope:1"]),
        "storage 'nope' does not exist",
    );
    fails_with(
        &pct.pct(&[
            "create",
            "100",
            "busybox.tar.zst",
            "--rootfs",
            "local-lvm:1",
        ]),
        "unable to parse volume ID 'busybox.tar.zst'",
    );
    fails_with(
        &pct.pct(&[
            "create",
            "100",
            "local:vztmpl/x.tar.zst",
            "--rootfs",
            "local-lvm:1",
        ]),
        "unable to create CT 100 - can't find file 'local:vztmpl/x.tar.zst'",
    );
    fails_with(
        &pct.pct(&["create", "100", &template, "--mp0", "/tmp,mp=/x"]),
        "mount points configured, but 'rootfs' not set - aborting",
    );
    let out = pct.pct(&["create", "100", &template, "--rootfs", "local-lvm:1"]);
    fails_with(
        &out,
        "unable to create CT 100 - unable to detect OS distribution",
    );
    assert!(
        stdout(&out).contains("extracting archive"),
        "task output on stdout"
    );
    assert!(!pct.conf_path(100).exists());
    assert_eq!(
        fs::read_dir(pct.root.join("images/local-lvm"))
            .unwrap()
            .count(),
        0
    );

    // Already exists: a CT, and a QEMU VM sharing the VMID space.
    ok_create("100");
    fails_with(
        &pct.pct(&["create", "100", &template, "--rootfs", "local-lvm:1"]),
        "CT 100 already exists on node 'pve'",
    );
    fs::write(
        pct.root.join("etc/pve/qemu-server/105.conf"),
        "memory: 512\n",
    )
    .unwrap();
    fails_with(
        &pct.pct(&["create", "105", &template, "--rootfs", "local-lvm:1"]),
        "VM 105 already exists on node 'pve'",
    );
    let other = pct.root.join("etc/pve/nodes/other/lxc");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("107.conf"), "memory: 512\n").unwrap();
    fails_with(
        &pct.pct(&["create", "107", &template, "--rootfs", "local-lvm:1"]),
        "CT 107 already exists on node 'other'",
    );
    fs::remove_dir_all(pct.root.join("etc/pve/nodes/other")).unwrap();
    // `--start 1` exits 0 even when the start fails.
    let out = pct.pct(&[
        "create",
        "108",
        &template,
        "--rootfs",
        "local-lvm:1",
        "--ostype",
        "unmanaged",
        "--entrypoint",
        "/bin/true",
        "--start",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("unable to get PID for CT 108 (not running?)"),
        "{}",
        stdout(&out)
    );
    pct.pct_ok(&["destroy", "108"]);
    fails_with(
        &pct.pvesh(&["get", "/cluster/nextid", "--vmid", "105"]),
        "vmid: VM 105 already exists",
    );
    assert_eq!(
        pct.pvesh_ok(&["get", "/cluster/nextid", "--vmid", "106"]),
        "106\n"
    );
    assert_eq!(pct.pvesh_ok(&["get", "/cluster/nextid"]), "101\n");

    // Missing config.
    for cmd in ["start", "stop", "status", "config", "destroy", "shutdown"] {
        fails_with(
            &pct.pct(&[cmd, "104"]),
            "Configuration file 'nodes/pve/lxc/104.conf' does not exist",
        );
    }
    fails_with(
        &pct.pvesh(&[
            "get",
            "/nodes/pve/lxc/104/status/current",
            "--output-format",
            "json",
        ]),
        "Configuration file 'nodes/pve/lxc/104.conf' does not exist",
    );

    // Not running.
    fails_with(&pct.pct(&["stop", "100"]), "CT 100 not running");
    fails_with(&pct.pct(&["shutdown", "100"]), "CT 100 not running");
    fails_with(
        &pct.pct(&["exec", "100", "--", "true"]),
        "container '100' not running!",
    );

    // Running.
    pct.pct_ok(&["start", "100"]);
    fails_with(&pct.pct(&["start", "100"]), "CT 100 already running");
    fails_with(
        &pct.pct(&["destroy", "100"]),
        "unable to destroy CT 100 - container is running",
    );
    let begun = Instant::now();
    fails_with(
        &pct.pct(&["shutdown", "100", "--timeout", "1"]),
        "container did not stop",
    );
    assert!(begun.elapsed() < Duration::from_secs(10));
    assert_eq!(
        pct.pct_ok(&["status", "100"]),
        "status: running\n",
        "sh ignores SIGPWR"
    );
    pct.pct_ok(&["shutdown", "100", "--timeout", "1", "--forceStop", "1"]);
    assert_eq!(pct.pct_ok(&["status", "100"]), "status: stopped\n");

    // Grammar: booleans take a value; exec without `--`.
    fails_with(
        &pct.pct(&["destroy", "--force", "100"]),
        "400 not enough arguments",
    );
    let out = pct.pct(&["exec", "100", "ls", "-x"]);
    fails_with(&out, "Unknown option: x");
    fails_with(&out, "400 unable to parse option");

    // Locks: the config's lock property, and the flock with its timeout.
    let conf_path = pct.conf_path(100);
    let conf = fs::read_to_string(&conf_path).unwrap();
    fs::write(&conf_path, format!("{conf}lock: create\n")).unwrap();
    fails_with(&pct.pct(&["start", "100"]), "CT is locked (create)");
    assert!(pct
        .pct_ok(&["list"])
        .contains("100        stopped    create       CT100"));
    pct.pct_ok(&["unlock", "100"]);
    fails_with(
        &pct.pct(&["unlock", "100"]),
        "no lock found trying to remove any lock",
    );
    fails_with(
        &pct.pct(&["unmount", "100"]),
        "no lock found trying to remove 'mounted'  lock",
    );
    let lock_path = pct.root.join("run/lock/lxc/pve-config-100.lock");
    let holder = fs::File::open(&lock_path).unwrap();
    // SAFETY: flock on a descriptor this test owns.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&holder), libc::LOCK_EX) },
        0
    );
    let out = support::run_with_files(
        pct.cmd("pct")
            .env("PCT_STANDIN_LOCK_TIMEOUT", "0.5")
            .args(["start", "100"]),
        &pct.dir.path().join("out"),
    );
    fails_with(
        &out,
        &format!("can't lock file '{}' - got timeout", lock_path.display()),
    );
    drop(holder);

    // Protection.
    pct.pct_ok(&["set", "100", "--protection", "1"]);
    fails_with(
        &pct.pct(&["destroy", "100"]),
        "can't remove CT 100 - protection mode enabled",
    );
    pct.pct_ok(&["set", "100", "--protection", "0"]);

    // An init that exits at once; a start LXC refuses.
    let conf = fs::read_to_string(&conf_path).unwrap();
    fs::write(&conf_path, format!("{conf}lxc.init.cmd: /bin/true\n")).unwrap();
    fails_with(
        &pct.pct(&["start", "100"]),
        "unable to get PID for CT 100 (not running?)",
    );
    fs::write(
        &conf_path,
        format!("{conf}lxc.mount.entry: /nonexistent-source data none bind 0 0\n"),
    )
    .unwrap();
    let out = pct.pct(&["start", "100"]);
    fails_with(&out, "startup for container '100' failed");
    assert!(
        stdout(&out).contains("lxc-start"),
        "LXC's errors are task output: {}",
        stdout(&out)
    );
    assert_eq!(pct.pct_ok(&["status", "100"]), "status: stopped\n");

    pct.pct_ok(&["destroy", "100"]);
    assert_eq!(pct.leftover_cgroups(), Vec::<std::path::PathBuf>::new());
}

#[test]
fn sixteen_parallel_nextid_and_create_races_get_distinct_vmids() {
    let pct = PctStandin::new();
    let template = pct.busybox_template("race.tar.zst", |_| {});
    let won: Vec<(u32, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                s.spawn(|| {
                    let mut losses = 0;
                    loop {
                        let vmid = nextid(&pct);
                        let id = vmid.to_string();
                        let out = pct.pct(&[
                            "create",
                            &id,
                            &template,
                            "--rootfs",
                            "local-lvm:1",
                            "--ostype",
                            "unmanaged",
                            "--unprivileged",
                            "0",
                        ]);
                        if out.status.success() {
                            return (vmid, losses);
                        }
                        fails_with(&out, &format!("CT {vmid} already exists on node 'pve'"));
                        losses += 1;
                        assert!(losses < 64, "too many lost races");
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ids: Vec<u32> = won.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    assert_eq!(ids, (100..116).collect::<Vec<_>>());
    eprintln!("lost races: {}", won.iter().map(|(_, l)| l).sum::<usize>());
    for id in &ids {
        let conf = fs::read_to_string(pct.conf_path(*id)).unwrap();
        assert!(
            conf.contains(&format!("rootfs: local-lvm:vm-{id}-disk-0,size=1G")),
            "{conf}"
        );
        assert!(!conf.contains("lock:"), "{conf}");
    }

    // Eight creates of one VMID: one wins, the others fail and leave nothing.
    let results: Vec<Output> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    pct.pct(&[
                        "create",
                        "200",
                        &template,
                        "--rootfs",
                        "local-lvm:1",
                        "--ostype",
                        "unmanaged",
                    ])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners = results.iter().filter(|o| o.status.success()).count();
    assert_eq!(winners, 1, "exactly one create of VMID 200 wins");
    for out in results.iter().filter(|o| !o.status.success()) {
        fails_with(out, "CT 200 already exists on node 'pve'");
    }
    let volumes: Vec<_> = fs::read_dir(pct.root.join("images/local-lvm"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("vm-200-"))
        .collect();
    assert_eq!(volumes, ["vm-200-disk-0"]);
    let conf = fs::read_to_string(pct.conf_path(200)).unwrap();
    assert!(conf.contains("rootfs: local-lvm:vm-200-disk-0,size=1G") && !conf.contains("lock:"));
}

#[test]
fn cleanup_stops_and_destroys_everything() {
    let pct = PctStandin::new();
    let template = pct.busybox_template("cleanup.tar.zst", |_| {});
    let mut pids = Vec::new();
    for id in ["100", "101"] {
        pct.pct_ok(&[
            "create",
            id,
            &template,
            "--rootfs",
            "local-lvm:1",
            "--ostype",
            "unmanaged",
            "--entrypoint",
            "/bin/sh /start.sh",
        ]);
        pct.pct_ok(&["start", id]);
        pids.push(pct.lxc_pid(id.parse().unwrap()).unwrap());
    }
    assert!(
        !pct.leftover_cgroups().is_empty(),
        "running containers have cgroups"
    );
    let out = pct.cleanup();
    assert!(out.status.success(), "{}", stderr(&out));
    for pid in pids {
        wait_for("the init to go", || support::process_gone(pid));
    }
    assert_eq!(pct.pct_ok(&["list"]), "");
    assert_eq!(
        fs::read_dir(pct.root.join("images/local-lvm"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(fs::read_dir(pct.lxcpath()).unwrap().count(), 0);
    assert_eq!(pct.leftover_cgroups(), Vec::<std::path::PathBuf>::new());
}

/// `pct set` on a running CT (reference/pct.md): memory, swap, cpulimit and cpuunits are
/// applied to the running container at once; other options wait in `[pve:pending]` and
/// take effect at the next start.
#[test]
fn set_hotplugs_resources_into_a_running_ct_and_queues_the_rest() {
    let pct = PctStandin::new();
    let template = pct.busybox_template("busybox.tar.zst", |_| {});
    let id = nextid(&pct).to_string();
    pct.pct_ok(&[
        "create",
        &id,
        &template,
        "--rootfs",
        "local-lvm:1",
        "--ostype",
        "unmanaged",
        "--entrypoint",
        "/bin/sleep 1000",
        "--memory",
        "256",
        "--cores",
        "1",
    ]);
    pct.pct_ok(&["start", &id]);
    pct.pct_ok(&[
        "set",
        &id,
        "--memory",
        "128",
        "--swap",
        "64",
        "--cpulimit",
        "0.5",
        "--cpuunits",
        "200",
        "--cores",
        "2",
    ]);
    // pct config shows the pending value; --current the one the CT runs with.
    for (args, cores) in [
        (&["config", &id][..], "cores: 2"),
        (&["config", &id, "--current", "1"], "cores: 1"),
    ] {
        let config = pct.pct_ok(args);
        for line in [
            "memory: 128",
            "swap: 64",
            "cpulimit: 0.5",
            "cpuunits: 200",
            cores,
        ] {
            assert!(
                config.lines().any(|l| l == line),
                "{line:?} not in\n{config}"
            );
        }
    }
    let conf = fs::read_to_string(pct.conf_path(id.parse().unwrap())).unwrap();
    assert!(conf.contains("\n[pve:pending]\ncores: 2\n"), "{conf}");
    let pid = pct.lxc_pid(id.parse().unwrap()).unwrap();
    support::assert_cgroup(
        pid,
        &[
            ("memory", "memory.limit_in_bytes", "134217728"),
            ("memory", "memory.memsw.limit_in_bytes", "201326592"),
            ("cpu", "cpu.cfs_quota_us", "50000"),
            ("cpu", "cpu.shares", "200"),
        ],
    );
    pct.pct_ok(&["stop", &id]);
    pct.pct_ok(&["start", &id]);
    let conf = fs::read_to_string(pct.conf_path(id.parse().unwrap())).unwrap();
    assert!(
        conf.contains("cores: 2\n") && !conf.contains("[pve:pending]"),
        "{conf}"
    );
    pct.pct_ok(&["stop", &id]);
    pct.pct_ok(&["destroy", &id, "--purge", "1"]);
}
