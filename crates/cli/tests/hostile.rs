//! Hostile input through the command line, as a caller or a local user could present it:
//! ids far too long, NUL bytes and a FIFO in the bundle, a rootfs through a symlink, a
//! link planted in the state store, a `--log` path that is a link. Each is refused with
//! the message docs/bad-input.md lists, quickly, and leaves nothing behind.

use proxcage_test_support as support;
use std::fs;
use std::os::unix::fs::symlink;
use std::time::{Duration, Instant};

use support::{busybox_bundle, edit_config, require_root, Proxcage, HOST_CONFIG};

/// A proxcage whose runc is a wrapper script in `dir` (test code): when one of its
/// arguments is `word`, it runs the shell commands `first`; then it execs the real runc.
fn with_runc_wrapper(dir: &std::path::Path, word: &str, first: &str) -> Proxcage {
    use std::os::unix::fs::PermissionsExt;
    let runc = support::require_tool("runc", "runc");
    let wrapper = dir.join("runc-wrapper");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = {word} ] && {{ {first}; }}; done\nexec {} \"$@\"\n",
            runc.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    Proxcage::new(&format!(
        "{HOST_CONFIG}\n[backends.runc]\nbinary = \"{}\"\n",
        wrapper.display()
    ))
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs proxcage, which must fail with exit code 1 within `secs`, and returns stderr.
fn refused(p: &Proxcage, args: &[&str], secs: u64) -> String {
    let start = Instant::now();
    let out = p.run(args);
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
    assert!(
        took < Duration::from_secs(secs),
        "{args:?} took {took:?}: {}",
        stderr(&out)
    );
    stderr(&out)
}

fn store_is_empty(p: &Proxcage) {
    assert_eq!(p.ok(&["list", "-q"]), "");
    let containers = p.root.join("containers");
    if containers.exists() {
        assert_eq!(fs::read_dir(&containers).unwrap().count(), 0);
    }
}

#[test]
fn an_id_of_a_thousand_characters_is_refused_before_any_path() {
    require_root();
    let p = Proxcage::new(HOST_CONFIG);
    let bundle = busybox_bundle(p.dir.path(), "b", &["true"]);
    let long = "a".repeat(1000);
    for args in [
        vec!["create", "--bundle", bundle.to_str().unwrap(), &long],
        vec!["state", &long],
        vec!["delete", "--force", &long],
        vec!["kill", &long, "KILL"],
    ] {
        let err = refused(&p, &args, 10);
        assert!(
            err.contains("invalid container id") && err.contains("the id is longer than 255 bytes"),
            "{args:?}: {err}"
        );
    }
    store_is_empty(&p);
}

#[test]
fn nul_bytes_and_a_fifo_in_the_bundle_are_refused() {
    require_root();
    let p = Proxcage::new(HOST_CONFIG);
    let bundle = busybox_bundle(p.dir.path(), "nul", &["true"]);
    edit_config(&bundle, |c| {
        c["process"]["args"] = serde_json::json!(["sh", "-c", "a\u{0}b"])
    });
    let err = refused(
        &p,
        &["create", "--bundle", bundle.to_str().unwrap(), "nul"],
        10,
    );
    assert!(
        err.contains(&format!(
            "{}: process.args[2] contains a NUL byte",
            bundle.join("config.json").display()
        )),
        "{err}"
    );

    let fifo = busybox_bundle(p.dir.path(), "fifo", &["true"]);
    fs::remove_file(fifo.join("config.json")).unwrap();
    nix::unistd::mkfifo(
        &fifo.join("config.json"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let err = refused(
        &p,
        &["create", "--bundle", fifo.to_str().unwrap(), "fifo"],
        10,
    );
    assert!(
        err.contains(&format!(
            "{} is a FIFO, not a regular file",
            fifo.join("config.json").display()
        )),
        "{err}"
    );
    store_is_empty(&p);
}

#[test]
fn a_rootfs_through_a_symlink_is_refused_as_runc_refuses_it() {
    require_root();
    let p = Proxcage::new(HOST_CONFIG);
    let bundle = busybox_bundle(p.dir.path(), "link", &["true"]);
    fs::rename(bundle.join("rootfs"), p.dir.path().join("real-rootfs")).unwrap();
    symlink(p.dir.path().join("real-rootfs"), bundle.join("rootfs")).unwrap();
    for backend in ["runc", "crun"] {
        let p = Proxcage::with_default(backend);
        let err = refused(
            &p,
            &["create", "--bundle", bundle.to_str().unwrap(), "link"],
            10,
        );
        assert!(
            err.contains("root.path rootfs goes through a symbolic link"),
            "{backend}: {err}"
        );
        store_is_empty(&p);
    }
    // The test is right: runc itself refuses this bundle.
    let runc = Proxcage::plain_runc();
    let out = runc.run(&["create", "--bundle", bundle.to_str().unwrap(), "link"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not an absolute path, or a symlink"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_link_planted_in_the_store_is_not_followed() {
    require_root();
    let p = Proxcage::new(HOST_CONFIG);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    // A real container first, so the store exists.
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "real"]);
    // A forged record elsewhere, reached through a link named like a container.
    let elsewhere = p.dir.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let forged = fs::read_to_string(p.root.join("containers/real/record.json"))
        .unwrap()
        .replace("real", "evil")
        .into_bytes();
    fs::write(elsewhere.join("record.json"), &forged).unwrap();
    let planted = p.root.join("containers/evil");
    symlink(&elsewhere, &planted).unwrap();

    let refused_dir = format!(
        "refusing the container directory {}: it is a symbolic link or not a directory",
        planted.display()
    );
    for args in [
        vec!["state", "evil"],
        vec!["kill", "evil", "KILL"],
        vec!["delete", "evil"],
    ] {
        let err = refused(&p, &args, 10);
        assert!(err.contains(&refused_dir), "{args:?}: {err}");
    }
    let err = refused(
        &p,
        &["create", "--bundle", bundle.to_str().unwrap(), "evil"],
        10,
    );
    assert!(err.contains(&refused_dir), "create: {err}");
    // list shows only the real container; the forged record is untouched.
    assert_eq!(p.ok(&["list", "-q"]).trim(), "real");
    assert_eq!(fs::read(elsewhere.join("record.json")).unwrap(), forged);
    fs::remove_file(&planted).unwrap();
    p.ok(&["delete", "--force", "real"]);
    store_is_empty(&p);
}

#[test]
fn a_log_path_that_is_a_link_or_a_fifo_is_refused() {
    require_root();
    let p = Proxcage::new(HOST_CONFIG);
    let victim = p.dir.path().join("victim");
    fs::write(&victim, "precious\n").unwrap();
    let link = p.dir.path().join("log-link");
    symlink(&victim, &link).unwrap();
    let err = refused(&p, &["--log", link.to_str().unwrap(), "state", "nope"], 10);
    assert!(
        err.contains(&format!("cannot open the log file {}", link.display())),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");

    let fifo = p.dir.path().join("log-fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let err = refused(&p, &["--log", fifo.to_str().unwrap(), "state", "nope"], 10);
    assert!(
        err.contains(&format!("cannot open the log file {}", fifo.display())),
        "{err}"
    );
}

#[test]
fn the_security_policy_limits_what_the_backend_annotation_may_select() {
    require_root();
    let p = Proxcage::new(&format!(
        "{HOST_CONFIG}\n[security]\nannotation_backends = [\"runc\"]\n"
    ));
    let bundle = busybox_bundle(p.dir.path(), "b", &["true"]);
    edit_config(&bundle, |c| {
        c["annotations"] = serde_json::json!({"io.proxcage.backend": "crun"})
    });
    let err = refused(
        &p,
        &["create", "--bundle", bundle.to_str().unwrap(), "c1"],
        10,
    );
    assert!(
        err.contains(&format!(
            "container c1: the annotation io.proxcage.backend=\"crun\" in {} selects a backend the [security] policy of {} does not let annotations select",
            bundle.join("config.json").display(),
            p.config.display()
        )),
        "{err}"
    );
    store_is_empty(&p);
    // The same container through runc, which the policy allows, is created.
    edit_config(&bundle, |c| {
        c["annotations"] = serde_json::json!({"io.proxcage.backend": "runc"})
    });
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "c1"]);
    p.ok(&["delete", "--force", "c1"]);
    store_is_empty(&p);
}

/// SIGTERM, SIGINT or SIGHUP to proxcage while its backend is creating the container: the
/// create finishes its step, undoes everything and fails; no record stuck in `creating`,
/// no container in the backend, no process left. A runc wrapper (test code) makes the
/// backend step slow enough to be hit.
#[test]
fn a_signal_during_create_rolls_it_back() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let p = with_runc_wrapper(dir.path(), "create", "sleep 2");
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "100"]);
    for (signal, group) in [
        (nix::sys::signal::Signal::SIGTERM, false),
        (nix::sys::signal::Signal::SIGHUP, false),
        (nix::sys::signal::Signal::SIGINT, true),
        (nix::sys::signal::Signal::SIGINT, false),
    ] {
        let err_path = p.dir.path().join("create.err");
        use std::os::unix::process::CommandExt;
        let mut child = p
            .cmd()
            .args(["create", "--bundle", bundle.to_str().unwrap(), "sig"])
            .process_group(0)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap();
        // Wait until the create is in the backend: the record says `creating`.
        let record = p.root.join("containers/sig/record.json");
        let start = Instant::now();
        while !fs::read_to_string(&record).is_ok_and(|r| r.contains("creating")) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the create never started"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        // SIGTERM and SIGHUP as a supervisor sends them, to proxcage alone; SIGINT as a
        // terminal's ^C, to the whole process group (the wrapper and runc too); and
        // SIGINT to proxcage alone.
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        if group {
            nix::sys::signal::killpg(pid, signal).unwrap();
        } else {
            nix::sys::signal::kill(pid, signal).unwrap();
        }
        let status = child.wait().unwrap();
        let err = fs::read_to_string(&err_path).unwrap();
        assert_eq!(status.code(), Some(1), "{signal}: {err}");
        assert!(
            err.contains(&format!(
                "container sig: create interrupted by {signal}: rolled back, nothing was created"
            )),
            "{signal}: {err}"
        );
        store_is_empty(&p);
        let runc_root = p.root.join("backends/runc");
        if runc_root.exists() {
            assert_eq!(fs::read_dir(&runc_root).unwrap().count(), 0, "{signal}");
        }
        let rootfs = bundle.join("rootfs");
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            if let Ok(root) = fs::read_link(entry.path().join("root")) {
                assert_ne!(root, rootfs, "{signal}: a container process was left");
            }
        }
    }
}

/// A create waiting for a container's lock (another proxcage holds it, a supervisor gives
/// up and sends SIGTERM) stops waiting at once: not after the lock's 60 s timeout. It
/// names the signal, and takes nothing of the other holder's.
#[test]
fn a_signal_ends_a_create_waiting_for_the_lock() {
    require_root();
    let p = Proxcage::new(HOST_CONFIG);
    let bundle = busybox_bundle(p.dir.path(), "b", &["true"]);
    // What an earlier command of the same id holds while it works: its directory, locked.
    let dir = p.root.join("containers/held");
    fs::create_dir_all(&dir).unwrap();
    let held = nix::fcntl::Flock::lock(
        fs::File::open(&dir).unwrap(),
        nix::fcntl::FlockArg::LockExclusiveNonblock,
    )
    .unwrap();
    let err_path = p.dir.path().join("create.err");
    let mut child = p
        .cmd()
        .args(["create", "--bundle", bundle.to_str().unwrap(), "held"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    // Past the stale-lock check (0.5 s): the holder, this test, is alive.
    std::thread::sleep(Duration::from_millis(1000));
    assert!(child.try_wait().unwrap().is_none(), "create did not wait");
    let signalled = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if signalled.elapsed() > Duration::from_secs(10) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("create still waited for the lock 10 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = fs::read_to_string(&err_path).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("gave up waiting for the lock on")
            && err.contains("proxcage received SIGTERM"),
        "{err}"
    );
    // The holder's directory is untouched, and no record was written into it.
    assert!(dir.is_dir());
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
    drop(held);
    fs::remove_dir(&dir).unwrap();
    store_is_empty(&p);
}

/// A backend binary killed by a signal (a crash, an OOM kill, an operator's kill -9) is
/// reported as killed, with what it printed on stderr before it died.
#[test]
fn a_backend_killed_by_a_signal_is_reported_with_its_stderr() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let p = with_runc_wrapper(
        dir.path(),
        "state",
        "echo 'half a thought' >&2; kill -KILL $$",
    );
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "100"]);
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "k1"]);
    let out = p.run(&["state", "k1"]);
    let err = stderr(&out);
    // The backend's own exit code is passed on, as for every backend failure.
    assert_eq!(out.status.code(), Some(137), "{err}");
    assert!(
        err.contains("state k1 failed (killed by SIGKILL): half a thought"),
        "{err}"
    );
    p.ok(&["delete", "--force", "k1"]);
    store_is_empty(&p);
}
