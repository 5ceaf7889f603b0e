//! `proxcage health`: faults injected for real (proxcage killed with SIGKILL in the middle
//! of a create, a CT destroyed by hand, records removed or damaged, a stale lock, a
//! leftover temp file), found with their exact kinds, repaired by `health --repair`, and
//! a second `health` clean. Every test leaves no container, CT or process behind.

use proxcage_test_support as support;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use support::pct::{proxcage_for, PctStandin};
use support::{busybox_bundle, require_root, require_tool, Proxcage};

/// `proxcage health --format json [extra]`: the exit code and the report.
fn health(p: &Proxcage, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["health", "--format", "json"];
    args.extend_from_slice(extra);
    let out = p.run(&args);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "health printed no JSON ({e}):\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

/// The (kind, object) of every finding, sorted.
fn findings(report: &serde_json::Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["object"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = list
        .iter()
        .map(|(k, o)| (k.to_string(), o.to_string()))
        .collect();
    out.sort();
    out
}

/// Checks that `health` reports exactly `expected` (exit 1), that `health --repair`
/// repairs every one of them within 30 s and ends healthy, and that a second `health` is
/// clean (exit 0).
fn found_and_repaired(p: &Proxcage, expected: &[(&str, &str)]) -> serde_json::Value {
    let (code, report) = health(p, &[]);
    assert_eq!(findings(&report), pairs(expected), "{report:#}");
    assert_eq!(code, 1, "{report:#}");
    for f in report["findings"].as_array().unwrap() {
        for field in ["kind", "severity", "object", "where", "message"] {
            assert!(f[field].is_string(), "{field} missing: {f}");
        }
        assert!(f["repair"].is_string(), "no repair offered: {f}");
    }
    let started = Instant::now();
    let (code, repaired) = health(p, &["--repair"]);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "repair took {:?}",
        started.elapsed()
    );
    assert_eq!(code, 0, "{repaired:#}");
    assert_eq!(repaired["healthy"], true, "{repaired:#}");
    let done = repaired["repairs"].as_array().unwrap();
    assert!(done.iter().all(|r| r["ok"] == true), "{repaired:#}");
    for (kind, object) in expected {
        assert!(
            done.iter()
                .any(|r| r["kind"] == *kind && r["object"] == *object),
            "no repair of {kind} {object}: {repaired:#}"
        );
    }
    let (code, again) = health(p, &[]);
    assert_eq!((code, findings(&again)), (0, vec![]), "{again:#}");
    assert_eq!(again["healthy"], true);
    repaired
}

fn executable(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A wrapper around `real` that SIGKILLs its parent (proxcage) when called with the word
/// `word` among its arguments: `before` the real command runs, or after it succeeded.
fn killing_wrapper(dir: &Path, name: &str, real: &Path, word: &str, before: bool) -> PathBuf {
    let path = dir.join(name);
    let kill = "kill -9 $PPID";
    let body = if before {
        format!(
            "if [ -n \"$hit\" ]; then {kill}; exit 1; fi\nexec {real} \"$@\"\n",
            real = real.display()
        )
    } else {
        format!(
            "{real} \"$@\"\nrc=$?\nif [ -n \"$hit\" ] && [ $rc = 0 ]; then {kill}; fi\nexit $rc\n",
            real = real.display()
        )
    };
    executable(
        &path,
        &format!("#!/bin/sh\nhit=\nfor a in \"$@\"; do [ \"$a\" = {word} ] && hit=1; done\n{body}"),
    );
    path
}

/// Runs `proxcage create` and checks that it was killed by SIGKILL.
fn create_killed(p: &Proxcage, bundle: &Path, id: &str) {
    use std::os::unix::process::ExitStatusExt;
    let out = p.run(&["create", "--bundle", bundle.to_str().unwrap(), id]);
    assert_eq!(
        out.status.signal(),
        Some(9),
        "proxcage was not killed: {out:?}"
    );
}

/// No container in proxcage's list nor in the backend's root.
fn no_containers(p: &Proxcage, backend: &str) {
    assert_eq!(p.ok(&["list", "-q"]), "");
    let root = p.root.join("backends").join(backend);
    if let Ok(entries) = fs::read_dir(&root) {
        let left: Vec<_> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().unwrap().is_dir())
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{backend} still has {left:?}");
    }
}

/// proxcage for `backend` (runc or crun) whose binary is a killing wrapper.
fn killed_setup(backend: &str, before: bool) -> Proxcage {
    require_root();
    let real = require_tool(backend, backend);
    let p = Proxcage::with_default(backend);
    let wrapper = killing_wrapper(p.dir.path(), backend, &real, "create", before);
    p.set_binary(backend, &wrapper);
    p
}

fn delegate_killed_during_create(backend: &str, before: bool) {
    let p = killed_setup(backend, before);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    create_killed(&p, &bundle, "victim");
    // Every command meeting the interrupted create names the exact command to run.
    for cmd in [
        &["start", "victim"][..],
        &["state", "victim"],
        &["kill", "victim"],
    ] {
        let out = p.run(cmd);
        let err = String::from_utf8_lossy(&out.stderr);
        let repair = format!("'proxcage --root {} health --repair'", p.root.display());
        assert!(
            out.status.code() == Some(1)
                && err.contains("its create was interrupted")
                && err.contains(&repair),
            "{cmd:?}: {err}"
        );
    }
    found_and_repaired(&p, &[("create-interrupted", "container victim")]);
    no_containers(&p, backend);
}

#[test]
fn runc_killed_after_runc_create() {
    delegate_killed_during_create("runc", false);
}

#[test]
fn runc_killed_before_runc_create() {
    delegate_killed_during_create("runc", true);
}

#[test]
fn crun_killed_after_crun_create() {
    delegate_killed_during_create("crun", false);
}

#[test]
fn crun_killed_before_crun_create() {
    delegate_killed_during_create("crun", true);
}

/// The next create of the same id cleans up after the killed one by itself.
#[test]
fn a_create_after_a_killed_create_of_the_same_id_recovers() {
    let p = killed_setup("runc", false);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    create_killed(&p, &bundle, "again");
    p.set_binary("runc", &require_tool("runc", "runc"));
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "again"]);
    assert_eq!(p.status("again"), "created");
    let (code, report) = health(&p, &[]);
    assert_eq!(code, 0, "{report:#}");
    p.ok(&["delete", "again"]);
    no_containers(&p, "runc");
}

fn runc_setup() -> Proxcage {
    require_root();
    require_tool("runc", "runc");
    Proxcage::with_default("runc")
}

#[test]
fn a_record_removed_by_hand_is_written_again_from_runc() {
    let p = runc_setup();
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "lost"]);
    fs::remove_dir_all(p.root.join("containers/lost")).unwrap();
    assert!(!p.run(&["state", "lost"]).status.success());
    found_and_repaired(&p, &[("record-missing", "container lost")]);
    assert_eq!(p.status("lost"), "created");
    p.ok(&["delete", "lost"]);
    no_containers(&p, "runc");
}

/// Deletes container `id` behind proxcage's back, with runc itself.
fn delete_with_runc_itself(p: &Proxcage, id: &str) {
    let out = Command::new(require_tool("runc", "runc"))
        .arg("--root")
        .arg(p.root.join("backends/runc"))
        .args(["delete", "--force", id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn a_container_gone_from_runc_loses_its_record() {
    let p = runc_setup();
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "behind"]);
    delete_with_runc_itself(&p, "behind");
    // list still shows it, and says it is gone.
    let table = p.ok(&["list"]);
    let row = table.lines().nth(1).unwrap_or_default();
    assert!(
        row.starts_with("behind ") && row.split_whitespace().nth(2) == Some("gone"),
        "{table}"
    );
    let listed: serde_json::Value =
        serde_json::from_str(&p.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(listed[0]["id"], "behind", "{listed}");
    assert_eq!(listed[0]["status"], "stopped", "{listed}");
    assert_eq!(listed[0]["gone"], true, "{listed}");
    assert_eq!(p.ok(&["list", "-q"]), "behind\n");
    found_and_repaired(&p, &[("container-gone", "container behind")]);
    no_containers(&p, "runc");
    // delete forgets such a container too.
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "behind"]);
    delete_with_runc_itself(&p, "behind");
    p.ok(&["delete", "behind"]);
    no_containers(&p, "runc");
}

/// A damaged record is set aside, and the container, still in runc, gets a new one.
#[test]
fn a_corrupt_record_is_set_aside_and_rebuilt() {
    let p = runc_setup();
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "bad"]);
    fs::write(
        p.root.join("containers/bad/record.json"),
        b"{\"id\": \"bad\", tru",
    )
    .unwrap();
    let repaired = found_and_repaired(&p, &[("record-corrupt", "container bad")]);
    let kinds: Vec<&str> = repaired["repairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["record-corrupt", "record-missing"], "{repaired:#}");
    assert_eq!(p.status("bad"), "created");
    let kept = fs::read_dir(p.root.join("health")).unwrap().count();
    assert_eq!(kept, 1, "the damaged record is kept");
    p.ok(&["delete", "bad"]);
    no_containers(&p, "runc");
}

#[test]
fn a_leftover_temp_file_is_removed() {
    let p = runc_setup();
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "tmp"]);
    // A pid above pid_max: no process has it.
    let tmp = p.root.join("containers/tmp/record.json.tmp.999999999");
    fs::write(&tmp, b"{\"id\":").unwrap();
    found_and_repaired(&p, &[("temp-file", "container tmp")]);
    assert!(!tmp.exists());
    assert_eq!(p.status("tmp"), "created");
    p.ok(&["delete", "tmp"]);
    no_containers(&p, "runc");
}

/// Holds a flock on `path` in a `sleep` whose parent (the `flock` that took the lock) is
/// killed: the lock's taker is gone, the lock stays.
struct StaleLocker {
    sleeper: i32,
}

impl StaleLocker {
    fn new(path: &Path) -> Self {
        let flock = require_tool("flock", "util-linux");
        let mut child: Child = Command::new(flock)
            .arg("-n")
            .arg(path)
            .args(["sleep", "1000"])
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let sleeper = loop {
            let children = fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id()))
                .unwrap_or_default();
            if let Some(pid) = children.split_whitespace().next() {
                break pid.parse().unwrap();
            }
            assert!(Instant::now() < deadline, "flock started no sleep");
            std::thread::sleep(Duration::from_millis(10));
        };
        child.kill().unwrap();
        child.wait().unwrap();
        StaleLocker { sleeper }
    }
}

impl Drop for StaleLocker {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.sleeper),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[test]
fn a_stale_lock_is_reported_by_commands_and_repaired() {
    let p = runc_setup();
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "locked"]);
    let locker = StaleLocker::new(&p.root.join("containers/locked"));
    // A command that needs the lock fails at once, naming the repair.
    let started = Instant::now();
    let out = p.run(&["delete", "locked"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("is stale")
            && err.contains("proxcage health --repair"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    found_and_repaired(&p, &[("stale-lock", "container locked")]);
    p.ok(&["delete", "locked"]);
    drop(locker);
    no_containers(&p, "runc");
}

// ---------------------------------------------------------------- pct (stand-in)

/// No CT, no template, no backend record, no files, no monitor.
fn pct_nothing_left(p: &Proxcage, standin: &PctStandin) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !monitors_of(p).is_empty() {
        assert!(
            Instant::now() < deadline,
            "monitors left: {:?}",
            monitors_of(p)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    standin.assert_nothing_left(p);
}

fn template_object(standin: &PctStandin) -> String {
    let names = standin.templates();
    assert_eq!(names.len(), 1, "{names:?}");
    format!("template {}", names[0])
}

/// proxcage on the stand-in, killed by `tool` (pct or pvesh, wrapped) at `word` during
/// the create of `id`; the config is the plain one again afterwards.
fn pct_create_killed(
    standin: &PctStandin,
    tool: &str,
    word: &str,
    before: bool,
    id: &str,
) -> Proxcage {
    let p = proxcage_for(standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    let plain = fs::read_to_string(&p.config).unwrap();
    let wrapper = killing_wrapper(
        p.dir.path(),
        &format!("killing-{tool}"),
        &standin.bin_dir.join(tool),
        word,
        before,
    );
    let config = fs::read_to_string(&p.config).unwrap().replace(
        &format!("{tool} = \"{}/{tool}\"", standin.bin_dir.display()),
        &format!("{tool} = \"{}\"", wrapper.display()),
    );
    fs::write(&p.config, config).unwrap();
    create_killed(&p, &bundle, id);
    fs::write(&p.config, plain).unwrap();
    p
}

#[test]
fn pct_killed_after_pct_create_before_the_record() {
    let standin = PctStandin::new();
    let p = pct_create_killed(&standin, "pct", "create", false, "half");
    // The CT exists, tagged, and no record names it.
    let listed = standin.pct_ok(&["list"]);
    assert!(listed.contains("100"), "{listed}");
    let template = template_object(&standin);
    let (_, report) = health(&p, &[]);
    let interrupted = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "create-interrupted")
        .unwrap()
        .clone();
    assert!(
        interrupted["message"]
            .as_str()
            .unwrap()
            .contains("CT 100 (made, never recorded)"),
        "{interrupted}"
    );
    found_and_repaired(
        &p,
        &[
            ("create-interrupted", "container half"),
            ("template-unreferenced", &template),
        ],
    );
    pct_nothing_left(&p, &standin);
}

/// Killed after `pct start`: the CT runs, its monitor waits in no one's tree; the repair
/// stops and destroys the CT and kills the monitor.
#[test]
fn pct_killed_after_pct_start() {
    pct_killed_around_pct_start(false, "started");
}

/// Killed right before `pct start`: the monitor waits for an init that never comes, in
/// no one's tree; the repair kills it and destroys the CT.
#[test]
fn pct_killed_before_pct_start_leaves_a_monitor_that_is_repaired() {
    pct_killed_around_pct_start(true, "unstarted");
}

fn pct_killed_around_pct_start(before: bool, id: &str) {
    let standin = PctStandin::new();
    let p = pct_create_killed(&standin, "pct", "start", before, id);
    assert_eq!(
        standin.lxc_pid(100).is_some(),
        !before,
        "the CT runs once started"
    );
    let monitors = monitors_of(&p);
    assert_eq!(monitors.len(), 1, "one monitor left by the killed create");
    let template = template_object(&standin);
    let monitor = format!("monitor {}", monitors[0]);
    let container = format!("container {id}");
    found_and_repaired(
        &p,
        &[
            ("create-interrupted", &container),
            ("monitor-leftover", &monitor),
            ("template-unreferenced", &template),
        ],
    );
    pct_nothing_left(&p, &standin);
}

/// Pids of pct monitors (`<files>/<id>/init --monitor ...`) started by `p` (they inherit
/// its PROXCAGE_CONFIG), zombies not counted.
fn monitors_of(p: &Proxcage) -> Vec<i64> {
    let marker = format!("PROXCAGE_CONFIG={}", p.config.display());
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i64>() else {
            continue;
        };
        let read = |file: &str| {
            String::from_utf8_lossy(&fs::read(entry.path().join(file)).unwrap_or_default())
                .into_owned()
        };
        let cmdline = read("cmdline");
        let monitor = cmdline
            .split('\0')
            .any(|a| a == "--monitor" || a == "__proxcage-pct-monitor");
        let ours = monitor && read("environ").split('\0').any(|v| v == marker);
        if ours && !support::process_gone(pid) {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn pct_killed_after_the_template_before_pct_create() {
    let standin = PctStandin::new();
    let p = pct_create_killed(&standin, "pvesh", "/cluster/nextid", true, "early");
    let template = template_object(&standin);
    found_and_repaired(
        &p,
        &[
            ("create-interrupted", "container early"),
            ("template-unreferenced", &template),
        ],
    );
    pct_nothing_left(&p, &standin);
}

/// The next create of the same id destroys the CT the killed create made.
#[test]
fn pct_create_after_a_killed_create_destroys_the_orphan_ct() {
    let standin = PctStandin::new();
    let p = pct_create_killed(&standin, "pct", "create", false, "redo");
    let bundle = p.dir.path().join("b");
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "redo"]);
    let listed = standin.pct_ok(&["list"]);
    assert_eq!(listed.lines().count(), 2, "one CT only:\n{listed}");
    let (code, report) = health(&p, &[]);
    assert_eq!(code, 0, "{report:#}");
    p.ok(&["delete", "redo"]);
    pct_nothing_left(&p, &standin);
}

#[test]
fn pct_ct_destroyed_behind_proxcages_back() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "gone"]);
    // A created CT runs (its init waits for start): destroying it takes --force.
    standin.pct_ok(&["destroy", "100", "--force", "1", "--purge", "1"]);
    found_and_repaired(&p, &[("ct-gone", "container gone")]);
    pct_nothing_left(&p, &standin);
}

#[test]
fn pct_record_removed_by_hand_is_written_again() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "lost"]);
    fs::remove_dir_all(p.root.join("containers/lost")).unwrap();
    found_and_repaired(&p, &[("record-missing", "container lost")]);
    assert_eq!(p.status("lost"), "created");
    p.ok(&["delete", "lost"]);
    pct_nothing_left(&p, &standin);
}

/// CTs proxcage cannot prove it made are reported and never touched.
#[test]
fn pct_foreign_and_half_created_cts_are_reported_and_left_alone() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let template = standin.busybox_template("other.tar.zst", |_| {});
    for (vmid, extra) in [
        (
            "100",
            &[
                "--tags",
                "proxcage",
                "--description",
                "proxcage container elsewhere",
            ][..],
        ),
        ("101", &[][..]),
    ] {
        let mut args = vec![
            "create",
            vmid,
            &template,
            "--rootfs",
            "local-lvm:1",
            "--ostype",
            "unmanaged",
        ];
        args.extend_from_slice(extra);
        standin.pct_ok(&args);
    }
    standin.pct_ok(&["set", "101", "--lock", "create"]);
    // While a create of container `elsewhere` runs (its record says creating, its
    // creator lives), the CT tagged with its id may be the one it is making: not judged.
    let record = p.root.join("containers/elsewhere");
    fs::create_dir_all(&record).unwrap();
    fs::write(
        record.join("record.json"),
        serde_json::json!({
            "id": "elsewhere", "backend": "pct", "bundle": "/nonexistent",
            "phase": "creating", "created": proxcage_store::now_rfc3339(),
            "creator_pid": std::process::id(),
        })
        .to_string(),
    )
    .unwrap();
    let (_, report) = health(&p, &[]);
    fs::remove_dir_all(&record).unwrap();
    assert!(
        !findings(&report)
            .iter()
            .any(|(_, object)| object == "CT 100"),
        "{report:#}"
    );
    let (code, report) = health(&p, &[]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        findings(&report),
        pairs(&[("ct-unrecorded", "CT 100"), ("ct-half-created", "CT 101")]),
        "{report:#}"
    );
    assert!(report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["repair"].is_null()));
    let (code, _) = health(&p, &["--repair"]);
    assert_eq!(code, 1);
    let listed = standin.pct_ok(&["list"]);
    assert_eq!(
        listed.lines().count(),
        3,
        "both CTs are still there:\n{listed}"
    );
    standin.pct_ok(&["unlock", "101"]);
    for vmid in ["100", "101"] {
        standin.pct_ok(&["destroy", vmid, "--purge", "1"]);
    }
    fs::remove_file(standin.template_dir().join("other.tar.zst")).unwrap();
    pct_nothing_left(&p, &standin);
}

#[test]
fn health_exit_codes_and_text() {
    let p = runc_setup();
    let out = p.run(&["health"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("healthy"));
    // A pct backend whose pct cannot list CTs: that check cannot run.
    let broken = p.dir.path().join("failing-pct");
    executable(&broken, "#!/bin/sh\necho 'pct is broken' >&2\nexit 255\n");
    fs::write(
        &p.config,
        format!(
            "[backends.pct]\npct = \"{b}\"\npvesh = \"{b}\"\nlxc_info = \"{b}\"\n",
            b = broken.display()
        ),
    )
    .unwrap();
    let out = p.run(&["health", "--backend", "pct"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("could not check backend pct"));
    let out = p.run(&["health", "--backend", "kata"]);
    assert_eq!(out.status.code(), Some(1));
}

/// crun without the settings for a hybrid cgroup layout: reported on such a host, and not
/// on a host with the unified layout.
#[test]
fn crun_on_the_hosts_cgroup_layout() {
    require_root();
    require_tool("crun", "crun");
    let p = Proxcage::new("default_backend = \"crun\"\n");
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    let unified = mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/cgroup") && l.contains(" cgroup2 "));
    let (code, report) = health(&p, &[]);
    if unified {
        assert_eq!((code, findings(&report)), (0, vec![]), "{report:#}");
    } else {
        assert_eq!(
            (code, findings(&report)),
            (1, pairs(&[("cgroup-layout", "backend crun")])),
            "{report:#}"
        );
        assert!(report["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("private_cgroup2 = true"));
    }
    // With this host's settings (tests/support HOST_CONFIG) crun is healthy.
    let p = Proxcage::with_default("crun");
    let (code, report) = health(&p, &[]);
    assert_eq!(code, 0, "{report:#}");
}

/// `delete` of a killed create's id cleans up the CT that create made; the template is
/// left for `health` to find.
#[test]
fn pct_delete_of_a_killed_create_destroys_its_ct() {
    let standin = PctStandin::new();
    let p = pct_create_killed(&standin, "pct", "create", false, "dead");
    assert_eq!(standin.pct_ok(&["list"]).lines().count(), 2);
    p.ok(&["delete", "dead"]);
    assert_eq!(standin.pct_ok(&["list"]), "", "the CT went with delete");
    let template = template_object(&standin);
    found_and_repaired(&p, &[("template-unreferenced", &template)]);
    pct_nothing_left(&p, &standin);
}

/// A config whose routing names a backend proxcage does not have fails every create:
/// health says so (not "healthy", exit 1), naming the file and the backend.
#[test]
fn a_config_naming_a_backend_proxcage_lacks_is_not_healthy() {
    for (config, name) in [
        ("default_backend = \"docker\"\n", "docker"),
        ("[[route]]\nbackend = \"podman\"\n", "podman"),
    ] {
        let p = Proxcage::new(config);
        let (code, report) = health(&p, &[]);
        assert_eq!(code, 1, "{report:#}");
        assert_eq!(report["healthy"], false, "{report:#}");
        let finding = &report["findings"][0];
        assert_eq!(finding["kind"], "config-invalid", "{report:#}");
        assert_eq!(finding["where"], p.config.to_str().unwrap(), "{report:#}");
        let message = finding["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("\"{name}\"")) && message.contains("every create fails"),
            "{message}"
        );
        let out = p.run(&["health"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            !text.contains("healthy: no problems found") && text.contains("[config-invalid]"),
            "{text}"
        );
    }
}

// ------------------------------------------------- pct: a CT is proven before it is touched

/// `p`'s `tool` replaced by `wrapper_body` (a shell script's lines after `#!/bin/sh`, with
/// `$REAL` the real tool) for the duration of `f`.
fn with_wrapped(p: &Proxcage, standin: &PctStandin, tool: &str, body: &str, f: impl FnOnce()) {
    let plain = fs::read_to_string(&p.config).unwrap();
    let wrapper = p.dir.path().join(format!("wrapped-{tool}"));
    executable(
        &wrapper,
        &format!(
            "#!/bin/sh\nREAL={}\n{body}\n",
            standin.bin_dir.join(tool).display()
        ),
    );
    let config = plain.replace(
        &format!("{tool} = \"{}/{tool}\"", standin.bin_dir.display()),
        &format!("{tool} = \"{}\"", wrapper.display()),
    );
    fs::write(&p.config, config).unwrap();
    f();
    fs::write(&p.config, plain).unwrap();
}

/// A pct that SIGKILLs its caller (proxcage) right after a `pct destroy` that succeeded.
const KILL_AFTER_DESTROY: &str = "\"$REAL\" \"$@\"\nrc=$?\n\
    [ \"$1\" = destroy ] && [ $rc = 0 ] && kill -9 $PPID\nexit $rc";

fn killed(out: std::process::Output) {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(9),
        "proxcage was not killed: {out:?}"
    );
}

fn pct_vmid_of(p: &Proxcage, id: &str) -> u64 {
    let record: serde_json::Value = serde_json::from_slice(
        &fs::read(p.root.join("backends/pct").join(format!("{id}.json"))).unwrap(),
    )
    .unwrap();
    record["vmid"].as_u64().unwrap()
}

/// Issue 22 item 1: a delete killed right after `pct destroy` leaves the record of `a`;
/// the next create (here of this root, and of another root with the same container id)
/// gets the freed VMID. Nothing done through `a` may reach that CT: state, kill, exec
/// refuse with the record called stale, list does not show `a` with its pid, and
/// `delete --force a` and health's repair forget `a` and leave the CT running.
#[test]
fn pct_a_stale_record_never_touches_the_ct_that_got_its_vmid() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let other = proxcage_for(&standin);
    // Another root of the node with files of its own.
    let config = fs::read_to_string(&other.config).unwrap().replace(
        &format!(
            "files_dir = \"{}\"",
            standin.dir.path().join("files").display()
        ),
        &format!(
            "files_dir = \"{}\"",
            other.dir.path().join("files").display()
        ),
    );
    fs::write(&other.config, config).unwrap();
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    let bundle = bundle.to_str().unwrap();
    for id in ["a", "c"] {
        p.ok(&["create", "--bundle", bundle, id]);
    }
    let (vmid_a, vmid_c) = (pct_vmid_of(&p, "a"), pct_vmid_of(&p, "c"));
    with_wrapped(&p, &standin, "pct", KILL_AFTER_DESTROY, || {
        killed(p.run(&["delete", "--force", "a"]));
        killed(p.run(&["delete", "--force", "c"]));
    });
    // VMID of a: this root's b; VMID of c: the other root's container c.
    p.ok(&["create", "--bundle", bundle, "b"]);
    // The same bundle: one template (roots sharing templates is item 3, not this test's).
    other.ok(&["create", "--bundle", bundle, "c"]);
    assert_eq!(pct_vmid_of(&p, "b"), vmid_a);
    assert_eq!(pct_vmid_of(&other, "c"), vmid_c);
    let pid_b = standin.lxc_pid(vmid_a as u32).expect("b runs");
    let pid_c = standin.lxc_pid(vmid_c as u32).expect("the other c runs");

    for id in ["a", "c"] {
        for args in [
            vec!["state", id],
            vec!["kill", id, "KILL"],
            vec!["exec", id, "true"],
        ] {
            let out = p.run(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{args:?} succeeded");
            assert!(err.contains("delete --force"), "{args:?}: {err}");
        }
    }
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&p.ok(&["list", "--format", "json"])).unwrap();
    for entry in &listed {
        let pid = entry["pid"].as_i64().unwrap_or(0);
        assert!(
            entry["id"] == "b" || (pid != pid_b && pid != pid_c),
            "a stale record shows a live CT's pid: {listed:?}"
        );
    }

    // health: both stale records, repaired by forgetting them.
    found_and_repaired(
        &p,
        &[
            ("record-stale", "container a"),
            ("record-stale", "container c"),
        ],
    );
    assert_eq!(standin.lxc_pid(vmid_a as u32), Some(pid_b), "b was touched");
    assert_eq!(standin.lxc_pid(vmid_c as u32), Some(pid_c), "c was touched");
    p.ok(&["delete", "--force", "b"]);
    other.ok(&["delete", "--force", "c"]);
    pct_nothing_left(&p, &standin);
}

/// Issue 22 item 1: `delete --force` of a stale record forgets it and leaves the CT that
/// has the VMID now alone.
#[test]
fn pct_delete_of_a_stale_record_leaves_the_new_ct_alone() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    let bundle = bundle.to_str().unwrap();
    p.ok(&["create", "--bundle", bundle, "a"]);
    let vmid = pct_vmid_of(&p, "a");
    with_wrapped(&p, &standin, "pct", KILL_AFTER_DESTROY, || {
        killed(p.run(&["delete", "--force", "a"]));
    });
    p.ok(&["create", "--bundle", bundle, "b"]);
    assert_eq!(pct_vmid_of(&p, "b"), vmid);
    let pid_b = standin.lxc_pid(vmid as u32).expect("b runs");
    p.ok(&["delete", "--force", "a"]);
    assert_eq!(
        standin.lxc_pid(vmid as u32),
        Some(pid_b),
        "b's CT was touched"
    );
    let (code, report) = health(&p, &[]);
    assert_eq!(code, 0, "{report:#}");
    p.ok(&["delete", "--force", "b"]);
    pct_nothing_left(&p, &standin);
}

/// Issue 22 item 10: pct destroy killed half-way (with proxcage) leaves the CT `lock:
/// destroyed`; health finds it and finishes the delete, and so does `delete --force`.
#[test]
fn pct_a_half_destroyed_ct_is_found_and_finished() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    let bundle = bundle.to_str().unwrap();
    for id in ["x", "y"] {
        p.ok(&["create", "--bundle", bundle, id]);
    }
    let dies = "if [ \"$1\" = destroy ]; then PCT_STANDIN_DESTROY_DIES=1 \"$REAL\" \"$@\"; \
                kill -9 $PPID; fi\nexec \"$REAL\" \"$@\"";
    with_wrapped(&p, &standin, "pct", dies, || {
        killed(p.run(&["delete", "--force", "x"]));
        killed(p.run(&["delete", "--force", "y"]));
    });
    let listed = standin.pct_ok(&["list"]);
    assert_eq!(
        listed.lines().filter(|l| l.contains("destroyed")).count(),
        2,
        "{listed}"
    );
    p.ok(&["delete", "--force", "y"]);
    found_and_repaired(&p, &[("ct-destroy-interrupted", "container x")]);
    pct_nothing_left(&p, &standin);
}

/// Issue 22 item 2: a truncated backend record. `delete --force` works (the CT is found by
/// its description); `health` reports only the damaged record (no monitor, template or
/// record of the running container is touched) and writes it again from the CT.
#[test]
fn pct_a_truncated_backend_record_is_rebuilt_from_the_ct_or_deleted() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    let bundle = bundle.to_str().unwrap();
    for id in ["kept", "dropped"] {
        p.ok(&["create", "--bundle", bundle, id]);
        p.ok(&["start", id]);
    }
    let vmid = pct_vmid_of(&p, "kept");
    let before: serde_json::Value = serde_json::from_str(&p.ok(&["state", "kept"])).unwrap();
    let pid = before["pid"].as_i64();
    assert!(standin.lxc_pid(vmid as u32).is_some(), "kept runs");
    let truncate = |id: &str| {
        let path = p.root.join("backends/pct").join(format!("{id}.json"));
        let text = fs::read(&path).unwrap();
        fs::write(&path, &text[..text.len() / 2]).unwrap();
    };
    truncate("dropped");
    truncate("kept");
    let dropped_vmid = 100 + 101 - vmid;
    p.ok(&["delete", "--force", "dropped"]);
    assert!(
        !standin
            .pct_ok(&["list"])
            .contains(&dropped_vmid.to_string()),
        "the CT of the deleted container is gone"
    );
    let monitors = monitors_of(&p);
    assert_eq!(monitors.len(), 1, "{monitors:?}");
    found_and_repaired(&p, &[("backend-record-corrupt", "container kept")]);
    assert_eq!(monitors_of(&p), monitors, "the monitor was left alone");
    let state: serde_json::Value = serde_json::from_str(&p.ok(&["state", "kept"])).unwrap();
    assert_eq!(state["status"], "running");
    assert_eq!(
        state["pid"].as_i64(),
        pid,
        "the same pid as before the damage"
    );
    p.ok(&["delete", "--force", "kept"]);
    pct_nothing_left(&p, &standin);
}

/// Issue 22 item 9: a pack killed by SIGKILL leaves its temp file in the template
/// directory; health finds it (and not the temp file of a pack still running) and removes it.
#[test]
fn pct_temp_files_of_killed_packs_are_found_and_removed() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let dir = standin.template_dir();
    let dead = ".proxcage-AbC123.tar.zst.tmp";
    fs::write(dir.join(dead), vec![0u8; 4096]).unwrap();
    // A pack in progress holds the lock on its temp file.
    let live = dir.join(".proxcage-XyZ789.tar.zst.tmp");
    fs::write(&live, b"").unwrap();
    // Both unchanged for longer than a pack takes to lock its file after making it.
    let settled = std::time::SystemTime::now() - proxcage_oci::template::PACK_LOCK_GRACE * 2;
    for file in [dir.join(dead), live.clone()] {
        fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(settled)
            .unwrap();
    }
    require_tool("flock", "util-linux");
    // Its own process group: flock's child, the sleep, goes with it at the end.
    let mut holder = Command::new("flock")
        .arg("-x")
        .arg(&live)
        .args(["sleep", "1000"])
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxcage_oci::template::is_abandoned_pack(&dir, ".proxcage-XyZ789.tar.zst.tmp") {
        assert!(Instant::now() < deadline, "flock did not take the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    found_and_repaired(&p, &[("temp-file", &format!("template pack {dead}"))]);
    assert!(!dir.join(dead).exists());
    assert!(live.exists(), "the running pack's file was removed");
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(holder.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    holder.wait().unwrap();
    fs::remove_file(&live).unwrap();
    pct_nothing_left(&p, &standin);
}

/// A lock of the pct backend held for longer than ten minutes is reported with its holder
/// (no repair: the holder runs); once released, it is not.
#[test]
fn pct_a_lock_held_too_long_is_reported_with_its_holder() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let refs = standin.template_dir().join(".proxcage-refs");
    fs::create_dir_all(&refs).unwrap();
    let lock = refs.join("pack-0123456789abcdef.lock");
    let flock = require_tool("flock", "util-linux");
    let mut holder = Command::new(flock)
        .arg(&lock)
        .args(["sleep", "1000"])
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .all(|l| !l.contains(&format!(" {} ", holder.id())))
    {
        assert!(Instant::now() < deadline, "flock took no lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    // What proxcage writes into its locks when it takes one, taken 20 minutes ago.
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1200;
    fs::write(
        &lock,
        format!(
            "pid {} since {since}: the lock of template packs of trees outlined 0123456789abcdef\n",
            holder.id()
        ),
    )
    .unwrap();
    let (code, report) = health(&p, &[]);
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(holder.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = holder.wait();
    // flock's sleep holds the lock until it is gone too, which under load is a moment
    // after flock has been reaped.
    let deadline = Instant::now() + Duration::from_secs(10);
    while nix::fcntl::Flock::lock(
        fs::File::open(&lock).unwrap(),
        nix::fcntl::FlockArg::LockExclusiveNonblock,
    )
    .is_err()
    {
        assert!(Instant::now() < deadline, "the killed holder kept the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        findings(&report),
        pairs(&[("lock-held-long", "lock pack-0123456789abcdef.lock")]),
        "{report:#}"
    );
    let message = report["findings"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("held for 20 min")
            && message.contains(&format!("process {}", holder.id()))
            && message.contains("the lock of template packs"),
        "{message}"
    );
    assert!(report["findings"][0]["repair"].is_null());
    let (code, report) = health(&p, &[]);
    assert_eq!((code, findings(&report)), (0, vec![]), "{report:#}");
    fs::remove_file(&lock).unwrap();
    pct_nothing_left(&p, &standin);
}
