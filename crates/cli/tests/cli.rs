//! The CLI as containerd, podman and operators meet it: routing, the log file, errors for
//! bad input that leave nothing behind, runc's flag spellings, and many proxcage
//! processes at once on one store.

use proxcage_test_support as support;
use std::fs;
use std::path::{Path, PathBuf};

use support::{busybox_bundle, edit_config, require_root, require_tool, Proxcage, HOST_CONFIG};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn nothing_left(p: &Proxcage) {
    assert_eq!(p.ok(&["list", "-q"]), "");
    let containers = p.root.join("containers");
    if containers.exists() {
        let left: Vec<_> = fs::read_dir(&containers)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "left in the store: {left:?}");
    }
    for backend in ["runc", "crun"] {
        let root = p.root.join("backends").join(backend);
        if root.exists() {
            let left: Vec<_> = fs::read_dir(&root)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert!(left.is_empty(), "left in {backend}'s root: {left:?}");
        }
    }
}

#[test]
fn annotation_beats_rule_beats_default() {
    require_root();
    require_tool("runc", "runc");
    require_tool("crun", "crun");
    let p = Proxcage::new(&format!(
        "{HOST_CONFIG}\n[[route]]\nbackend = \"crun\"\nid = \"light-*\"\n"
    ));
    let plain = busybox_bundle(p.dir.path(), "plain", &["sleep", "100"]);
    let annotated = busybox_bundle(p.dir.path(), "annotated", &["sleep", "100"]);
    edit_config(&annotated, |spec| {
        spec["annotations"] = serde_json::json!({"io.proxcage.backend": "runc"})
    });
    let (plain, annotated) = (plain.to_str().unwrap(), annotated.to_str().unwrap());
    p.ok(&["create", "--bundle", annotated, "light-1"]);
    p.ok(&["create", "--bundle", plain, "light-2"]);
    p.ok(&["create", "--bundle", plain, "other"]);
    assert_eq!(
        p.backend_of("light-1"),
        "runc",
        "the annotation wins over the rule"
    );
    assert_eq!(
        p.backend_of("light-2"),
        "crun",
        "the rule wins over the default"
    );
    assert_eq!(p.backend_of("other"), "runc", "the default");
    for id in ["light-1", "light-2", "other"] {
        assert_eq!(p.status(id), "created");
        p.ok(&["delete", id]);
    }
    nothing_left(&p);
}

#[test]
fn later_commands_follow_the_recorded_backend() {
    require_root();
    require_tool("crun", "crun");
    let p = Proxcage::with_default("crun");
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "100"]);
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "rec"]);
    // The operator changes the default: the existing container stays with crun.
    fs::write(&p.config, HOST_CONFIG).unwrap();
    assert_eq!(p.status("rec"), "created");
    assert_eq!(p.backend_of("rec"), "crun");
    p.ok(&["start", "rec"]);
    p.ok(&["delete", "--force", "rec"]);
    nothing_left(&p);
}

#[test]
fn an_unknown_backend_in_the_annotation_is_named() {
    require_root();
    let p = Proxcage::new(HOST_CONFIG);
    let bundle = busybox_bundle(p.dir.path(), "b", &["true"]);
    edit_config(&bundle, |spec| {
        spec["annotations"] = serde_json::json!({"io.proxcage.backend": "kata"})
    });
    let out = p.run(&["create", "--bundle", bundle.to_str().unwrap(), "k"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("io.proxcage.backend")
            && err.contains("\"kata\"")
            && err.contains("runc, crun"),
        "{err}"
    );
    nothing_left(&p);
}

#[test]
fn the_log_file_gets_exactly_one_error_line_per_failure() {
    require_root();
    let p = Proxcage::new(HOST_CONFIG);
    let log = p.dir.path().join("log.json");
    let log_arg = log.to_str().unwrap();
    // Created even when nothing fails: containerd's shim opens it after every call.
    p.ok(&["--log", log_arg, "--log-format", "json", "list"]);
    assert_eq!(fs::read_to_string(&log).unwrap(), "");
    let out = p.run(&["--log", log_arg, "--log-format=json", "state", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing on stdout but results");
    assert!(stderr(&out).contains("container nope does not exist"));
    p.run(&[
        "--log",
        log_arg,
        "--log-format",
        "json",
        "kill",
        "nope",
        "KILL",
    ]);
    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for line in lines {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(entry["level"], "error");
        assert!(
            entry["msg"].as_str().unwrap().contains("does not exist"),
            "{line}"
        );
        assert!(entry["time"].as_str().unwrap().ends_with('Z'));
    }
    // runc's text shape.
    let text_log = p.dir.path().join("log.txt");
    p.run(&["--log", text_log.to_str().unwrap(), "start", "nope"]);
    let text = fs::read_to_string(&text_log).unwrap();
    assert!(
        text.starts_with("time=\"")
            && text.contains(" level=error msg=\"container nope does not exist\"\n"),
        "{text}"
    );
    // A bad --log-format is an error, as in runc.
    let out = p.run(&["--log-format", "yaml", "list"]);
    assert_eq!(out.status.code(), Some(1));
}

/// Each bad bundle: exit 1, a message naming the file and the problem, nothing left.
#[test]
fn bad_bundles_are_refused_with_the_file_and_field_named() {
    require_root();
    let p = Proxcage::new(HOST_CONFIG);
    let dir = p.dir.path();
    let good = busybox_bundle(dir, "good", &["true"]);
    let config = |name: &str| dir.join(name).join("config.json").display().to_string();
    let variant = |name: &str, change: &dyn Fn(&mut serde_json::Value)| {
        let bundle = dir.join(name);
        fs::create_dir_all(&bundle).unwrap();
        let mut spec: serde_json::Value =
            serde_json::from_slice(&fs::read(good.join("config.json")).unwrap()).unwrap();
        spec["root"]["path"] = serde_json::json!(good.join("rootfs"));
        change(&mut spec);
        fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(&spec).unwrap(),
        )
        .unwrap();
    };
    variant("version", &|s| s["ociVersion"] = "2.0.0".into());
    variant("noroot", &|s| s["root"]["path"] = "missing-rootfs".into());
    variant("noargs", &|s| s["process"]["args"] = serde_json::json!([]));
    variant("relmount", &|s| {
        s["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"destination": "data", "type": "tmpfs", "source": "tmpfs"}))
    });
    variant("badtype", &|s| s["process"]["user"]["uid"] = "root".into());
    fs::create_dir_all(dir.join("nojson")).unwrap();
    fs::write(
        dir.join("nojson/config.json"),
        "{\n  \"ociVersion\": \"1.0.2\",\n  oops\n}",
    )
    .unwrap();
    fs::create_dir_all(dir.join("noconfig")).unwrap();
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            "missing-dir".into(),
            vec![format!(
                "bundle directory {} does not exist",
                dir.join("missing-dir").display()
            )],
        ),
        (
            "noconfig".into(),
            vec![config("noconfig"), "does not exist".into()],
        ),
        (
            "nojson".into(),
            vec![config("nojson"), "invalid JSON at line 3, column".into()],
        ),
        (
            "version".into(),
            vec![config("version"), "ociVersion \"2.0.0\"".into()],
        ),
        (
            "noroot".into(),
            vec![
                config("noroot"),
                "root.path missing-rootfs does not exist".into(),
            ],
        ),
        (
            "noargs".into(),
            vec![config("noargs"), "process.args is empty".into()],
        ),
        (
            "relmount".into(),
            vec![
                config("relmount"),
                "destination \"data\" is not absolute".into(),
            ],
        ),
        (
            "badtype".into(),
            vec![config("badtype"), "process.user.uid".into()],
        ),
    ];
    for (name, wanted) in cases {
        let bundle = dir.join(&name);
        let out = p.run(&[
            "create",
            "--bundle",
            bundle.to_str().unwrap(),
            &format!("c-{name}"),
        ]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        let err = stderr(&out);
        for want in &wanted {
            assert!(
                err.contains(want.as_str()),
                "{name}: {err:?} lacks {want:?}"
            );
        }
    }
    // An id that is not one never reaches a path.
    for bad in ["../x", "a/b", ""] {
        let out = p.run(&["create", "--bundle", good.to_str().unwrap(), bad]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("invalid container id"),
            "{}",
            stderr(&out)
        );
    }
    assert!(!dir.join("x").exists());
    nothing_left(&p);
}

#[test]
fn an_unknown_capability_is_a_warning_like_runc() {
    require_root();
    let p = Proxcage::new(HOST_CONFIG);
    let bundle = busybox_bundle(p.dir.path(), "b", &["true"]);
    edit_config(&bundle, |spec| {
        spec["process"]["capabilities"]["bounding"]
            .as_array_mut()
            .unwrap()
            .push("CAP_NOPE".into())
    });
    let out = p.run(&["create", "--bundle", bundle.to_str().unwrap(), "cap"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("CAP_NOPE"), "{}", stderr(&out));
    p.ok(&["delete", "cap"]);
    nothing_left(&p);
}

#[test]
fn config_file_errors_name_the_key_and_the_file() {
    let p = Proxcage::new(
        "default_backend = \"runc\"\n[backends.runc]\nbinary_path = \"/usr/sbin/runc\"\n",
    );
    let out = p.run(&["list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(p.config.to_str().unwrap()) && err.contains("binary_path"),
        "{err}"
    );
    // toml's snippet as toml prints it, over several lines, pointing at the mistake; the
    // --log line stays one line.
    fs::write(
        &p.config,
        "default_backend = \"runc\"\n\nbinray = \"/usr/sbin/runc\"\n",
    )
    .unwrap();
    let log = p.dir.path().join("log.json");
    let out = p.run(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "list",
    ]);
    let err = stderr(&out);
    assert!(
        err.contains("TOML parse error at line 3, column 1\n")
            && err.contains("\n3 | binray = \"/usr/sbin/runc\"\n")
            && !err.contains("column 1   |"),
        "{err}"
    );
    let logged = fs::read_to_string(&log).unwrap();
    assert_eq!(logged.lines().count(), 1, "{logged}");
    let entry: serde_json::Value = serde_json::from_str(&logged).unwrap();
    assert!(
        entry["msg"].as_str().unwrap().contains("\n3 | binray"),
        "{logged}"
    );
    // An explicitly named config file must exist.
    let out = p.run(&["--config", "/nonexistent/proxcage.toml", "list"]);
    assert!(
        stderr(&out).contains("/nonexistent/proxcage.toml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_missing_backend_binary_names_the_package() {
    require_root();
    let p = Proxcage::new("[backends.runc]\nbinary = \"/nonexistent/runc\"\n");
    let bundle = busybox_bundle(p.dir.path(), "b", &["true"]);
    let out = p.run(&["create", "--bundle", bundle.to_str().unwrap(), "m"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("install the Debian package 'runc'")
            && stderr(&out).contains("or set [backends.runc] binary in the config file"),
        "{}",
        stderr(&out)
    );
    nothing_left(&p);
    // The pct backend's tools have keys of their own: `pct`, not `binary`.
    let p =
        Proxcage::new("default_backend = \"pct\"\n[backends.pct]\npct = \"/nonexistent/pct\"\n");
    let out = p.run(&["create", "--bundle", bundle.to_str().unwrap(), "m"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("install the Debian package 'pve-container'")
            && stderr(&out).contains("or set [backends.pct] pct in the config file")
            && !stderr(&out).contains("binary"),
        "{}",
        stderr(&out)
    );
    nothing_left(&p);
}

/// proxcage whose `backend` binary is a script that appends each call's arguments to the
/// returned file (one line a call) and runs the real binary; after a `create` the real
/// binary made, the shell command `after_create` decides the script's exit.
fn logging_wrapper(backend: &str, after_create: &str) -> (Proxcage, PathBuf) {
    require_root();
    let real = require_tool(backend, backend);
    let p = Proxcage::with_default(backend);
    let calls = p.dir.path().join(format!("{backend}.calls"));
    let wrapper = p.dir.path().join(format!("{backend}-wrapper"));
    support::install_script(
        &wrapper,
        &format!(
            "#!/bin/sh\n[ -n \"$FAKE_PROBE\" ] && exit 0\necho \"$*\" >> {calls}\n\
             for a in \"$@\"; do\n  if [ \"$a\" = create ]; then {real} \"$@\" || exit; {after_create}; fi\ndone\n\
             exec {real} \"$@\"\n",
            calls = calls.display(),
            real = real.display(),
        ),
    );
    p.set_binary(backend, &wrapper);
    (p, calls)
}

/// The arguments of the `create` call for container `id` that the wrapper logged.
fn create_call(calls: &Path, id: &str) -> String {
    let calls = fs::read_to_string(calls).unwrap_or_default();
    calls
        .lines()
        .find(|line| {
            let args: Vec<&str> = line.split(' ').collect();
            args.contains(&"create") && args.last() == Some(&id)
        })
        .unwrap_or_else(|| panic!("no create of {id} among the calls:\n{calls}"))
        .to_string()
}

/// The caller's `--systemd-cgroup` reaches runc (containerd passes it with
/// SystemdCgroup = true), and only when given.
#[test]
fn the_callers_systemd_cgroup_flag_reaches_runc() {
    let (p, calls) = logging_wrapper("runc", "exit 0");
    let bundle = busybox_bundle(p.dir.path(), "b", &["true"]);
    // Without systemd on the host, runc may refuse the create: what counts here is what
    // runc was asked.
    let _ = p.run(&[
        "--systemd-cgroup",
        "create",
        "--bundle",
        bundle.to_str().unwrap(),
        "sd",
    ]);
    let _ = p.run(&["delete", "--force", "sd"]);
    let with = create_call(&calls, "sd");
    assert!(with.split(' ').any(|a| a == "--systemd-cgroup"), "{with}");
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "plain"]);
    p.ok(&["delete", "--force", "plain"]);
    let without = create_call(&calls, "plain");
    assert!(!without.contains("--systemd-cgroup"), "{without}");
    nothing_left(&p);
}

/// A create that the backend fails after making the container is undone: the error is
/// the backend's, and neither the record nor the backend's container is left.
fn a_failed_backend_create_is_undone(backend: &str) {
    let (p, calls) = logging_wrapper(backend, "echo create failed on purpose >&2; exit 1");
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    let out = p.run(&["create", "--bundle", bundle.to_str().unwrap(), "undone"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("create failed on purpose"),
        "{}",
        stderr(&out)
    );
    create_call(&calls, "undone");
    let out = p.run(&["state", "undone"]);
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    nothing_left(&p);
    // And the id is free again.
    let real = require_tool(backend, backend);
    p.set_binary(backend, &real);
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "undone"]);
    p.ok(&["delete", "--force", "undone"]);
    nothing_left(&p);
}

#[test]
fn a_failed_runc_create_is_undone() {
    a_failed_backend_create_is_undone("runc");
}

#[test]
fn a_failed_crun_create_is_undone() {
    a_failed_backend_create_is_undone("crun");
}

/// A spec that asks for a terminal, run without one: the backend's words, then what to do.
#[test]
fn a_terminal_spec_run_without_a_terminal_says_what_to_do() {
    require_root();
    for backend in ["runc", "crun"] {
        require_tool(backend, backend);
        let p = Proxcage::with_default(backend);
        let bundle = busybox_bundle(p.dir.path(), "b", &["true"]);
        edit_config(&bundle, |spec| spec["process"]["terminal"] = true.into());
        // Its own session: no controlling terminal to open.
        let mut cmd = p.cmd();
        cmd.args(["run", "--bundle", bundle.to_str().unwrap(), "tty"]);
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                nix::unistd::setsid()
                    .map(drop)
                    .map_err(std::io::Error::from)
            });
        }
        let out = support::run_with_files(&mut cmd, &p.dir.path().join("tty"));
        assert_eq!(out.status.code(), Some(1), "{backend}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("config.json asks for a terminal (process.terminal is true)")
                && stderr(&out).contains("set process.terminal to false"),
            "{backend}: {}",
            stderr(&out)
        );
        nothing_left(&p);
    }
}

/// crun without this host's crun settings: on a hybrid cgroup layout, crun's refusal
/// says which settings fix it; on a unified one, the create works.
#[test]
fn crun_on_a_hybrid_cgroup_host_says_which_settings_to_set() {
    require_root();
    require_tool("crun", "crun");
    let p = Proxcage::new("default_backend = \"crun\"\n");
    let bundle = busybox_bundle(p.dir.path(), "b", &["true"]);
    let out = p.run(&["create", "--bundle", bundle.to_str().unwrap(), "hy"]);
    let unified = nix::sys::statfs::statfs("/sys/fs/cgroup")
        .unwrap()
        .filesystem_type()
        == nix::sys::statfs::CGROUP2_SUPER_MAGIC;
    if unified {
        assert!(out.status.success(), "{}", stderr(&out));
        p.ok(&["delete", "--force", "hy"]);
    } else {
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("cgroups in hybrid mode not supported")
                && stderr(&out).contains(
                    "set [backends.crun] private_cgroup2 = true and cgroup_manager = \"disabled\""
                ),
            "{}",
            stderr(&out)
        );
    }
    nothing_left(&p);
}

#[test]
fn runc_flag_spellings_and_version() {
    let p = Proxcage::new(HOST_CONFIG);
    let root = p.root.to_str().unwrap();
    let mut cmd = std::process::Command::new(support::proxcage_bin());
    cmd.env("PROXCAGE_CONFIG", &p.config).args([
        "-root",
        root,
        "-log-format=json",
        "list",
        "-format",
        "json",
    ]);
    let out = support::run_with_files(&mut cmd, &p.dir.path().join("x"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "null\n");
    assert!(
        Path::new(root).join("containers").is_dir(),
        "-root was honoured"
    );

    let version = p.ok(&["--version"]);
    let lines: Vec<&str> = version.lines().collect();
    assert_eq!(lines.len(), 3, "{version}");
    assert!(lines[0].starts_with("proxcage version "));
    assert!(lines[1].starts_with("commit: "));
    assert_eq!(lines[2], "spec: 1.1.0");

    // No command: the help on stdout, exit 0, as runc does.
    let mut cmd = std::process::Command::new(support::proxcage_bin());
    let out = support::run_with_files(&mut cmd, &p.dir.path().join("bare"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Usage:") && help.contains("create"), "{help}");
}

#[test]
fn spec_writes_runcs_default_and_refuses_to_overwrite() {
    let p = Proxcage::new(HOST_CONFIG);
    let bundle = p.dir.path().join("spec");
    fs::create_dir(&bundle).unwrap();
    p.ok(&["spec", "--bundle", bundle.to_str().unwrap()]);
    let spec: serde_json::Value =
        serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["process"]["args"], serde_json::json!(["sh"]));
    assert_eq!(spec["root"]["path"], "rootfs");
    let out = p.run(&["spec", "--bundle", bundle.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("exists"), "{}", stderr(&out));
    p.ok(&[
        "spec",
        "--rootless",
        "--bundle",
        p.dir.path().to_str().unwrap(),
    ]);
    let rootless: serde_json::Value =
        serde_json::from_slice(&fs::read(p.dir.path().join("config.json")).unwrap()).unwrap();
    assert!(rootless["linux"]["uidMappings"].is_array());
}

/// 64 proxcage processes at once, half routed to runc and half to crun, each running a
/// random interleaving of create/start/kill/delete/list/state on 16 shared ids: every
/// command returns (none waits on a lock forever), `list` always succeeds with valid
/// JSON, no record is ever unreadable, failures are the ones runc's grammar promises
/// (exists, does not exist, wrong state), and once everything is deleted nothing is left
/// in the store, in the backends' roots or among the host's processes. The seed is
/// printed; `PROXCAGE_RACE_SEED=<n>` replays a run.
#[test]
fn racing_lifecycles_on_shared_ids_keep_the_store_consistent() {
    require_root();
    require_tool("runc", "runc");
    require_tool("crun", "crun");
    let p = Proxcage::new(HOST_CONFIG);
    // One runc bundle per id: each bundle has a cgroup of its own, and runc containers
    // that shared one would remove it under each other (runc deletes a container's
    // cgroup with it). crun runs here without cgroups, so one bundle serves every id.
    let runc_bundles: Vec<PathBuf> = (0..16)
        .map(|i| busybox_bundle(p.dir.path(), &format!("runc-{i}"), &["sleep", "100"]))
        .collect();
    let crun_bundle = busybox_bundle(p.dir.path(), "crun", &["sleep", "100"]);
    edit_config(&crun_bundle, |spec| {
        spec["annotations"] = serde_json::json!({"io.proxcage.backend": "crun"})
    });
    let seed = support::race_seed("racing lifecycles");
    // Failures a caller must be ready for when others work on the same id: the id is
    // gone or taken, or the container is in the wrong state for the command (in runc's
    // words, or crun's: crun cannot open exec.fifo to start a container that already
    // started).
    const EXPECTED: [&str; 10] = [
        "does not exist",
        "already exists",
        "is being created by proxcage process",
        "not running",
        "cannot start a container that has stopped",
        "cannot start an already running container",
        "container process is already dead",
        "exec.fifo`: No such file or directory",
        "cannot delete container",
        "is not running",
    ];
    let health_findings = std::sync::Mutex::new(Vec::new());
    let execs_ran = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for thread in 0..64u64 {
            let p = &p;
            let health_findings = &health_findings;
            let execs_ran = &execs_ran;
            let runc_bundles = &runc_bundles;
            let crun_bundle = &crun_bundle;
            s.spawn(move || {
                let mut rng = support::RaceRng::new(seed, thread);
                let mut next = |n| rng.below(n);
                for _ in 0..10 {
                    let n = next(16);
                    let id = format!("race-{n}");
                    let bundle = if thread % 2 == 0 {
                        &runc_bundles[n as usize]
                    } else {
                        crun_bundle
                    };
                    let args: Vec<&str> = match next(10) {
                        0 | 1 => vec!["create", "--bundle", bundle.to_str().unwrap(), &id],
                        2 => vec!["start", &id],
                        3 => vec!["kill", &id, "KILL"],
                        4 => vec!["delete", "--force", &id],
                        5 => vec!["list", "--format", "json"],
                        6 => vec!["exec", &id, "echo", "exec-ran"],
                        7 => vec!["health", "--format", "json"],
                        8 => vec!["health", "--format", "json", "--repair"],
                        _ => vec!["state", &id],
                    };
                    let out = p.run(&args);
                    let err = stderr(&out);
                    support::assert_no_race_damage(&args, &err);
                    if args[0] == "health" {
                        // Others' work in progress is not damage: every check runs (no
                        // exit 2), and whatever it reports, the report is valid JSON.
                        assert!(
                            matches!(out.status.code(), Some(0 | 1)),
                            "{args:?}: {} {err}",
                            out.status
                        );
                        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
                            .unwrap_or_else(|e| panic!("health printed invalid JSON: {e}"));
                        assert!(report["findings"].is_array(), "{report}");
                        if let Some(findings) = report["findings"].as_array() {
                            health_findings
                                .lock()
                                .unwrap()
                                .extend(findings.iter().cloned());
                        }
                        continue;
                    }
                    if args[0] == "list" {
                        assert!(out.status.success(), "list failed: {err}");
                        let listed: serde_json::Value = serde_json::from_slice(&out.stdout)
                            .unwrap_or_else(|e| panic!("list printed invalid JSON: {e}"));
                        // runc's wording for no containers is `null`.
                        assert!(listed.is_array() || listed.is_null(), "{listed}");
                        continue;
                    }
                    if args[0] == "exec" {
                        // An exec that succeeded ran its command.
                        if out.status.success() {
                            assert_eq!(
                                String::from_utf8_lossy(&out.stdout),
                                "exec-ran\n",
                                "{args:?} succeeded without running: {err}"
                            );
                            execs_ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        // An exec that meets a container being killed or deleted fails in
                        // the backend's own words, and they are many (runc: "unable to
                        // start container process: ...", crun: "fail startup", "write to
                        // sync socket: Broken pipe", ...), or silently with the exit status
                        // of the killed process: only the words above are ruled out.
                        continue;
                    }
                    assert!(
                        matches!(out.status.code(), Some(0 | 1)),
                        "{args:?}: {} {err}",
                        out.status
                    );
                    if !out.status.success() {
                        assert!(
                            EXPECTED.iter().any(|e| err.contains(e)),
                            "{args:?} failed unexpectedly: {err}"
                        );
                    }
                }
            });
        }
    });
    eprintln!("execs that ran during the race: {}", execs_ran.into_inner());
    for (i, finding) in health_findings.into_inner().unwrap().iter().enumerate() {
        if i < 20 {
            eprintln!("health reported during the race: {finding}");
        }
    }
    for i in 0..16 {
        p.ok(&["delete", "--force", &format!("race-{i}")]);
    }
    nothing_left(&p);
    // No container process outlived its container: nothing on the host runs with one of
    // the bundles' root filesystems as its root.
    let roots: Vec<PathBuf> = runc_bundles
        .iter()
        .chain([&crun_bundle])
        .map(|b| b.join("rootfs"))
        .collect();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(root) = fs::read_link(entry.path().join("root")) {
            assert!(
                !roots.contains(&root),
                "process {} still runs in {}",
                entry.file_name().to_string_lossy(),
                root.display()
            );
        }
    }
}

/// Python under which a created container's process stays a zombie once it dies: it
/// becomes the child subreaper of what it runs (argv[2:]), writes the exit code, then
/// reaps nothing until its stdin closes. argv[1] takes the command's stderr.
const NON_REAPING_PARENT: &str = r#"
import ctypes, subprocess, sys
if ctypes.CDLL(None).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")
with open(sys.argv[1], "wb") as err:
    code = subprocess.call(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=err, stderr=err)
print(code, flush=True)
sys.stdin.read()
"#;

/// A container whose process died before `start` (killed, and not yet reaped by its
/// parent, which a slow reaper or a busy shim can leave for a while): `start` fails
/// promptly with words that say so, through either backend, instead of waiting forever
/// on a process that will never read its exec.fifo, and `delete` removes it. (crun waits
/// forever when the process dies just after crun looked at it; that moment is hard to
/// hit from here, and `a_start_waiting_on_a_dead_process_gives_up_on_crun` in the crun
/// backend's tests holds proxcage to it with a crun that waits.)
#[test]
fn start_of_a_container_whose_process_died_fails_and_does_not_hang() {
    use std::io::{BufRead, BufReader};
    require_root();
    require_tool("runc", "runc");
    require_tool("crun", "crun");
    let python = require_tool("python3", "python3");
    for backend in ["runc", "crun"] {
        let p = Proxcage::with_default(backend);
        let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "100"]);
        let create_err = p.dir.path().join("create.stderr");
        let mut parent = std::process::Command::new(&python)
            .arg("-c")
            .arg(NON_REAPING_PARENT)
            .arg(&create_err)
            .arg(&p.bin)
            .arg("--root")
            .arg(&p.root)
            .args(["create", "--bundle", bundle.to_str().unwrap(), "dead"])
            .env("PROXCAGE_CONFIG", &p.config)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut code = String::new();
        BufReader::new(parent.stdout.take().unwrap())
            .read_line(&mut code)
            .unwrap();
        assert_eq!(
            code.trim(),
            "0",
            "{backend}: create failed: {}",
            fs::read_to_string(&create_err).unwrap_or_default()
        );
        let state: serde_json::Value = serde_json::from_str(&p.ok(&["state", "dead"])).unwrap();
        let pid = state["pid"].as_i64().unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !support::process_gone(pid) {
            assert!(
                std::time::Instant::now() < deadline,
                "{backend}: pid {pid} lives on after SIGKILL"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            fs::metadata(format!("/proc/{pid}")).is_ok(),
            "{backend}: pid {pid} was reaped: the test proves nothing"
        );

        let out = p.run(&["start", "dead"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{backend}: {err}");
        // proxcage's words when it saw the process die while crun waited; crun's and
        // runc's own when they saw it before they began to wait.
        assert!(
            err.contains("container process is already dead")
                || err.contains("container `dead` is not running")
                || err.contains("cannot start a container that has stopped"),
            "{backend}: {err}"
        );
        p.ok(&["delete", "--force", "dead"]);
        drop(parent.stdin.take());
        parent.wait().unwrap();
        nothing_left(&p);
    }
}

#[test]
fn features_report_the_default_backend_and_the_routes() {
    require_root();
    require_tool("runc", "runc");
    require_tool("crun", "crun");
    for backend in ["runc", "crun"] {
        let p = Proxcage::with_default(backend);
        let features: serde_json::Value = serde_json::from_str(&p.ok(&["features"])).unwrap();
        assert!(
            features["ociVersionMin"]
                .as_str()
                .unwrap()
                .starts_with("1."),
            "{features}"
        );
        assert!(
            features["ociVersionMax"]
                .as_str()
                .unwrap()
                .starts_with("1."),
            "{features}"
        );
        assert!(features["hooks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h == "poststop"));
        assert_eq!(
            features["annotations"]["io.proxcage.default-backend"],
            backend
        );
        assert_eq!(
            features["annotations"]["io.proxcage.backends"],
            "runc,crun,pct,jail"
        );
    }
}

#[test]
fn bundle_create_and_template_create_from_the_command_line() {
    require_root();
    require_tool("runc", "runc");
    let p = Proxcage::new(HOST_CONFIG);
    let rootfs = p.dir.path().join("rootfs");
    support::busybox_rootfs(&rootfs);
    let out = p.dir.path().join("made");
    let made = p.ok(&[
        "bundle",
        "create",
        out.to_str().unwrap(),
        "--from",
        rootfs.to_str().unwrap(),
        "--arg",
        "sh",
        "--arg",
        "-c",
        "--arg",
        "echo \"$GREETING from $(pwd)\"",
        "--env",
        "GREETING=hello",
        "--cwd",
        "/tmp",
    ]);
    assert_eq!(made.trim(), out.to_str().unwrap());
    // The bundle runs as built (no terminal: detach its stdio from ours).
    edit_config(&out, |spec| spec["process"]["terminal"] = false.into());
    let ran = p.run(&["run", "--bundle", out.to_str().unwrap(), "made"]);
    assert!(ran.status.success(), "{}", stderr(&ran));
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "hello from /tmp\n");

    let templates = p.dir.path().join("templates");
    fs::create_dir(&templates).unwrap();
    let volume = p.ok(&[
        "template",
        "create",
        out.to_str().unwrap(),
        "--dir",
        templates.to_str().unwrap(),
    ]);
    let file = volume
        .trim()
        .strip_prefix("local:vztmpl/")
        .unwrap_or_else(|| panic!("{volume}"));
    assert!(
        file.starts_with("proxcage-") && file.ends_with(".tar.zst"),
        "{file}"
    );
    assert!(templates.join(file).is_file());
    let again = p.ok(&[
        "template",
        "create",
        out.to_str().unwrap(),
        "--dir",
        templates.to_str().unwrap(),
    ]);
    assert_eq!(again, volume, "the same rootfs gives the same template");
    let archive = p.ok(&[
        "template",
        "create",
        out.to_str().unwrap(),
        "--dir",
        templates.to_str().unwrap(),
        "--format",
        "oci-archive",
    ]);
    assert!(archive.trim().ends_with(".tar"), "{archive}");
    let out2 = p.run(&[
        "template",
        "create",
        out.to_str().unwrap(),
        "--storage",
        "nfs-templates",
    ]);
    assert!(stderr(&out2).contains("pass --dir"), "{}", stderr(&out2));
    // A template directory that does not exist (no Proxmox here): say how to name one.
    let absent = p.dir.path().join("no-vz/template/cache");
    fs::write(
        &p.config,
        format!(
            "{HOST_CONFIG}\n[backends.pct]\ntemplate_dir = \"{}\"\n",
            absent.display()
        ),
    )
    .unwrap();
    let out4 = p.run(&["template", "create", out.to_str().unwrap()]);
    assert_eq!(out4.status.code(), Some(1));
    assert!(
        stderr(&out4).contains(&format!(
            "the template directory {} does not exist",
            absent.display()
        )) && stderr(&out4).contains("pass --dir DIR, or set [backends.pct] template_dir")
            && !stderr(&out4).contains("cannot inspect"),
        "{}",
        stderr(&out4)
    );

    let missing = p.dir.path().join("nothing-here");
    let bad = p.dir.path().join("bad");
    let out3 = p.run(&[
        "bundle",
        "create",
        bad.to_str().unwrap(),
        "--from",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(out3.status.code(), Some(1));
    assert!(
        stderr(&out3).contains(missing.to_str().unwrap()),
        "{}",
        stderr(&out3)
    );
    assert!(
        !bad.exists() || fs::read_dir(&bad).unwrap().count() == 0,
        "nothing left in OUT"
    );
}

#[test]
fn a_jail_route_sends_containers_to_ocijail() {
    require_root();
    require_tool("runc", "runc");
    let dir = tempfile::tempdir().unwrap();
    let ocijail = support::ocijail::OcijailStandin::install(dir.path());
    let p = Proxcage::new(&format!(
        "{HOST_CONFIG}\n[[route]]\nbackend = \"jail\"\nid = \"jail-*\"\n\n[backends.jail]\nbinary = \"{}\"\n",
        ocijail.binary().display()
    ));
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "100"]);
    let bundle = bundle.to_str().unwrap();
    p.ok(&["create", "--bundle", bundle, "jail-1"]);
    p.ok(&["create", "--bundle", bundle, "other"]);
    assert_eq!(p.backend_of("jail-1"), "jail", "the rule");
    assert_eq!(p.backend_of("other"), "runc", "the default");
    assert_eq!(p.status("jail-1"), "created");
    p.ok(&["start", "jail-1"]);
    assert_eq!(p.status("jail-1"), "running");
    // What ocijail lacks: refused, naming the backend, exit 1.
    let out = p.run(&["pause", "jail-1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the jail backend cannot pause: ocijail, which it drives, has no pause or resume command"),
        "{}",
        stderr(&out)
    );
    for id in ["jail-1", "other"] {
        p.ok(&["delete", "--force", id]);
    }
    // Besides its state and list: only jail-1's lifecycle reached ocijail, pause did not.
    let changes: Vec<String> = ocijail
        .subcommands()
        .into_iter()
        .filter(|c| c != "state" && c != "list")
        .collect();
    assert_eq!(changes, ["create", "start", "delete"], "ocijail's calls");
    nothing_left(&p);
}
