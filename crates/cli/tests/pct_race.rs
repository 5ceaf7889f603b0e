//! The pct backend (against the pct stand-in, test code that runs real LXC, not Proxmox)
//! under racing lifecycles: 16 proxcage processes running random interleavings of
//! create/start/kill/delete/list/state on 4 shared ids. Every command returns, `list`
//! always works, failures are the expected ones, and nothing is left afterwards: no CT,
//! no template, no record, no file. The seed is printed; `PROXCAGE_RACE_SEED` replays.
//! Creates and deletes of different ids run at once (no backend-wide lock), with shared
//! and different images and repairs among them; roots that share the files and template
//! directories leave each other alone; a slow hook holds up no other create; a wait for a
//! lock ends at SIGTERM.

use proxcage_test_support as support;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::pct::{backend_record, proxcage_for, vmid_of, PctStandin};
use support::{busybox_bundle, edit_config, require_tool, Proxcage};

#[test]
fn racing_lifecycles_on_the_pct_backend_leave_nothing() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    let seed = support::race_seed("racing pct lifecycles");
    // The id is gone or taken, or the container is in the wrong state for the command.
    const EXPECTED: [&str; 5] = [
        "does not exist",
        "already exists",
        "is being created by proxcage process",
        "not running",
        "cannot start a container that is",
    ];
    let execs_ran = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for thread in 0..16u64 {
            let (p, bundle, execs_ran) = (&p, &bundle, &execs_ran);
            s.spawn(move || {
                let mut rng = support::RaceRng::new(seed, thread);
                let mut next = |n| rng.below(n);
                for _ in 0..6 {
                    let id = format!("prace-{}", next(4));
                    let args: Vec<&str> = match next(9) {
                        0 | 1 => vec!["create", "--bundle", bundle.to_str().unwrap(), &id],
                        2 => vec!["start", &id],
                        3 => vec!["kill", &id, "KILL"],
                        4 => vec!["delete", "--force", &id],
                        5 => vec!["exec", &id, "echo", "exec-ran"],
                        6 => vec!["health", "--format", "json"],
                        7 => vec!["health", "--format", "json", "--repair"],
                        _ => vec!["list", "--format", "json"],
                    };
                    let out = p.run(&args);
                    let err = String::from_utf8_lossy(&out.stderr).into_owned();
                    if args[0] == "list" {
                        assert!(out.status.success(), "list failed: {err}");
                        continue;
                    }
                    support::assert_no_race_damage(&args, &err);
                    // An exec that succeeded ran its command.
                    if args[0] == "exec" && out.status.success() {
                        assert_eq!(
                            String::from_utf8_lossy(&out.stdout),
                            "exec-ran\n",
                            "{args:?} succeeded without running: {err}"
                        );
                        execs_ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    if args[0] == "health" {
                        // Every check runs (no exit 2) and the report is valid JSON,
                        // whatever others are doing.
                        assert!(
                            matches!(out.status.code(), Some(0 | 1)),
                            "{args:?}: {} {err} {}",
                            out.status,
                            String::from_utf8_lossy(&out.stdout)
                        );
                        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
                            .unwrap_or_else(|e| panic!("health printed invalid JSON: {e}"));
                        eprintln!("health during the race: {}", report["findings"]);
                        continue;
                    }
                    // An exec whose CT is killed while lxc-attach joins it fails in
                    // lxc-attach's words (pct exec passes them on); one whose process
                    // was already running dies with the CT, silently, with the status
                    // of a process killed by SIGKILL (as with runc).
                    let exec_lost_its_ct = args[0] == "exec"
                        && (err.contains("lxc-attach: ")
                            || (out.status.code() == Some(128 + libc::SIGKILL) && err.is_empty()));
                    if !out.status.success() && !exec_lost_its_ct {
                        assert!(
                            EXPECTED.iter().any(|e| err.contains(e)),
                            "{args:?} failed unexpectedly ({}): {err}",
                            out.status
                        );
                    }
                }
            });
        }
    });
    eprintln!("execs that ran during the race: {}", execs_ran.into_inner());
    for i in 0..4 {
        p.ok(&["delete", "--force", &format!("prace-{i}")]);
    }
    standin.assert_nothing_left(&p);
    assert_eq!(fs::read_dir(p.root.join("containers")).unwrap().count(), 0);
}

/// A busybox bundle running `sleep 1000` whose rootfs holds `/tag` with `tag`: bundles of
/// one tag share a template, others have their own.
fn bundle_with(p: &Proxcage, name: &str, tag: &str) -> PathBuf {
    let bundle = busybox_bundle(p.dir.path(), name, &["sleep", "1000"]);
    fs::write(bundle.join("rootfs/tag"), tag).unwrap();
    bundle
}

fn create_args<'a>(bundle: &'a Path, id: &'a str) -> [&'a str; 4] {
    ["create", "--bundle", bundle.to_str().unwrap(), id]
}

/// `health --repair` runs through and leaves no race damage.
fn repair(p: &Proxcage) {
    let out = p.run(&["health", "--format", "json", "--repair"]);
    let err = String::from_utf8_lossy(&out.stderr);
    support::assert_no_race_damage(&["health", "--repair"], &err);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "health --repair: {} {err} {}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Every container of `ids` is created (its CT proven its own: `state` checks that) and
/// no two have one VMID.
fn assert_created_apart(p: &Proxcage, ids: &[String]) {
    let mut vmids: Vec<u32> = ids.iter().map(|id| vmid_of(p, id)).collect();
    for id in ids {
        assert_eq!(p.status(id), "created", "{id}");
    }
    vmids.sort();
    vmids.dedup();
    assert_eq!(vmids.len(), ids.len(), "a VMID given twice: {vmids:?}");
}

#[test]
fn creates_and_deletes_of_different_ids_with_repairs_among_them_lose_no_template() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let shared = bundle_with(&p, "shared", "shared");
    let own: Vec<PathBuf> = (0..4)
        .map(|i| bundle_with(&p, &format!("own-{i}"), &format!("own-{i}")))
        .collect();
    let bundle_of = |i: usize| if i % 2 == 0 { &shared } else { &own[i / 2] };
    // Eight creates at once, four of one image and four of images of their own, while
    // health repairs what it finds.
    let first: Vec<String> = (0..8).map(|i| format!("mix-{i}")).collect();
    std::thread::scope(|s| {
        s.spawn(|| (0..3).for_each(|_| repair(&p)));
        for (i, id) in first.iter().enumerate() {
            let (p, bundle) = (&p, bundle_of(i));
            s.spawn(move || p.ok(&create_args(bundle, id)));
        }
    });
    assert_created_apart(&p, &first);
    assert_eq!(standin.templates().len(), 5, "{:?}", standin.templates());
    // Deletes of the last users of two images while creates of those images start, and
    // of users of the shared image while others use it; repairs among them.
    let second: Vec<(String, &PathBuf)> = vec![
        ("new-0".into(), &shared),
        ("new-1".into(), &own[0]),
        ("new-2".into(), &own[1]),
        ("new-3".into(), &shared),
    ];
    std::thread::scope(|s| {
        s.spawn(|| (0..3).for_each(|_| repair(&p)));
        for id in &first[..4] {
            let p = &p;
            s.spawn(move || p.ok(&["delete", "--force", id]));
        }
        for (id, bundle) in &second {
            let p = &p;
            s.spawn(move || p.ok(&create_args(bundle, id)));
        }
    });
    let living: Vec<String> = first[4..]
        .iter()
        .cloned()
        .chain(second.iter().map(|(id, _)| id.clone()))
        .collect();
    assert_created_apart(&p, &living);
    // shared, own-0 (new-1), own-1 (new-2), own-2 (mix-5), own-3 (mix-7).
    assert_eq!(standin.templates().len(), 5, "{:?}", standin.templates());
    for id in &living {
        let template = backend_record(&p, id)["template"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(standin.templates().contains(&template), "{id}: {template}");
    }
    std::thread::scope(|s| {
        for id in &living {
            let p = &p;
            s.spawn(move || p.ok(&["delete", "--force", id]));
        }
    });
    repair(&p);
    standin.assert_nothing_left(&p);
}

/// The pid of container `id`'s monitor (`state`'s pid while the container is running).
fn monitor_of(p: &Proxcage, id: &str) -> i64 {
    let state: serde_json::Value = serde_json::from_str(&p.ok(&["state", id])).unwrap();
    state["pid"].as_i64().unwrap()
}

/// Two roots (one per containerd namespace) with one config: the same files and template
/// directories. What one does never touches the other's containers, monitors, files or
/// templates, though their container ids and images are the same.
#[test]
fn two_roots_sharing_files_and_templates_leave_each_other_alone() {
    let standin = PctStandin::new();
    let a = proxcage_for(&standin);
    let b = proxcage_for(&standin);
    // One bundle: each create makes its mount targets in the rootfs, which changes its
    // content (mtimes) for a bundle of its own.
    let bundle = busybox_bundle(a.dir.path(), "b", &["sleep", "1000"]);
    a.ok(&create_args(&bundle, "web"));
    a.ok(&["start", "web"]);
    let monitor = monitor_of(&a, "web");
    b.ok(&create_args(&bundle, "web"));
    assert_eq!(standin.templates().len(), 1, "one image, one template");
    b.ok(&["delete", "--force", "web"]);
    assert_eq!(standin.templates().len(), 1, "A's container still uses it");
    // B has nothing left to repair, and touches nothing of A's.
    repair(&b);
    assert_eq!(a.status("web"), "running");
    assert!(
        !support::process_gone(monitor),
        "B's repair killed A's monitor"
    );
    assert_eq!(monitor_of(&a, "web"), monitor);
    assert_eq!(standin.templates().len(), 1);
    let out = a.ok(&["exec", "web", "echo", "still-here"]);
    assert_eq!(out, "still-here\n");
    // A's next create of that image finds its template.
    a.ok(&create_args(&bundle, "web-2"));
    assert_eq!(standin.templates().len(), 1);
    for id in ["web", "web-2"] {
        a.ok(&["delete", "--force", id]);
    }
    repair(&a);
    standin.assert_nothing_left(&a);
    standin.assert_nothing_left(&b);
}

/// proxcage `args` started in the background, its stdout and stderr in files under
/// `p`'s directory (named `name`).
fn spawn(p: &Proxcage, args: &[&str], name: &str) -> std::process::Child {
    let file = |ext: &str| fs::File::create(p.dir.path().join(format!("{name}.{ext}"))).unwrap();
    p.cmd()
        .args(args)
        .stdin(Stdio::null())
        .stdout(file("stdout"))
        .stderr(file("stderr"))
        .spawn()
        .unwrap()
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A create whose createRuntime hook waits holds nothing another create needs: the
/// second create finishes while the first is still in its hook.
#[test]
fn a_slow_create_runtime_hook_holds_up_no_other_create() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let marks = p.dir.path().join("marks");
    fs::create_dir(&marks).unwrap();
    let slow = busybox_bundle(p.dir.path(), "slow", &["sleep", "1000"]);
    // In its hook until the test says go (or a minute has passed).
    let hook = format!(
        "touch {m}/in-hook; i=0; while [ ! -e {m}/go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done",
        m = marks.display()
    );
    edit_config(&slow, |spec| {
        spec["hooks"] = serde_json::json!({
            "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", hook]}],
        });
    });
    let fast = busybox_bundle(p.dir.path(), "fast", &["sleep", "1000"]);
    let mut first = spawn(&p, &create_args(&slow, "slow"), "slow");
    wait_until("the first create's hook", Duration::from_secs(60), || {
        assert!(first.try_wait().unwrap().is_none(), "the slow create ended");
        marks.join("in-hook").exists()
    });
    let out = p.run(&create_args(&fast, "fast"));
    let still_in_hook = first.try_wait().unwrap().is_none();
    fs::write(marks.join("go"), "").unwrap();
    let status = first.wait().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        still_in_hook,
        "the second create waited for the first one's hook"
    );
    assert!(status.success(), "the slow create failed");
    for id in ["slow", "fast"] {
        p.ok(&["delete", "--force", id]);
    }
    standin.assert_nothing_left(&p);
}

/// `flock <path> sleep 1000` in a process group of its own: the flock process takes the
/// lock, its child sleeps holding it.
fn hold_lock(path: &Path) -> std::process::Child {
    let flock = require_tool("flock", "util-linux");
    let holder = Command::new(flock)
        .arg(path)
        .args(["sleep", "1000"])
        .process_group(0)
        .spawn()
        .unwrap();
    wait_until("the lock to be held", Duration::from_secs(10), || {
        !Command::new("flock")
            .arg("-n")
            .arg(path)
            .arg("true")
            .status()
            .unwrap()
            .success()
    });
    holder
}

/// Whether process `parent` has a child that runs `sleep`.
fn sleeping_child_of(parent: u32) -> bool {
    fs::read_dir("/proc").unwrap().flatten().any(|e| {
        let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // "pid (comm) state ppid ..."
        let Some((comm, rest)) = stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(')')) else {
            return false;
        };
        comm == "sleep" && rest.split_whitespace().nth(1) == Some(&parent.to_string())
    })
}

fn kill_group(holder: &mut std::process::Child) {
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(holder.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = holder.wait();
}

/// A create waiting for a template's lock gives up at SIGTERM, naming the lock and its
/// holder; a lock whose taker is gone while its child holds it is reported at once, and
/// health removes it.
#[test]
fn a_create_waiting_for_a_held_lock_ends_at_sigterm_naming_it() {
    let standin = PctStandin::new();
    let p = proxcage_for(&standin);
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    p.ok(&create_args(&bundle, "first"));
    let template = backend_record(&p, "first")["template"]
        .as_str()
        .unwrap()
        .to_string();
    p.ok(&["delete", "--force", "first"]);
    let refs = standin.template_dir().join(".proxcage-refs");
    let lock = refs.join(format!("{template}.lock"));
    let mut holder = hold_lock(&lock);
    let mut create = spawn(&p, &create_args(&bundle, "second"), "second");
    // It has packed (the pack lock names it) or is about to wait for the template's lock.
    wait_until(
        "the create to take the pack lock",
        Duration::from_secs(60),
        || {
            fs::read_dir(&refs).unwrap().flatten().any(|e| {
                fs::read_to_string(e.path())
                    .is_ok_and(|t| t.starts_with(&format!("pid {} ", create.id())))
            })
        },
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(create.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    // Given up at the signal, not after the lock's timeout (minutes).
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = create.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the create ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = fs::read_to_string(p.dir.path().join("second.stderr")).unwrap();
    kill_group(&mut holder);
    assert!(!status.success(), "{err}");
    for part in [
        format!("the lock of template {template}"),
        format!("held by process {}", holder.id()),
        "proxcage received SIGTERM".to_string(),
    ] {
        assert!(err.contains(&part), "{part:?} not in: {err}");
    }
    // The taker gone (flock killed), its child holding the file: stale, said at once.
    let mut orphaned = hold_lock(&lock);
    // flock locks, then starts its child: killed before that, it leaves no holder.
    wait_until("flock's child", Duration::from_secs(10), || {
        sleeping_child_of(orphaned.id())
    });
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(orphaned.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    // Reaped: a zombie still counts as the taker.
    let _ = orphaned.wait();
    let out = p.run(&create_args(&bundle, "second"));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success() && err.contains("stale") && err.contains(&template),
        "{err}"
    );
    let report = p.run(&["health", "--format", "json", "--repair"]);
    let report = String::from_utf8_lossy(&report.stdout).into_owned();
    kill_group(&mut orphaned);
    assert!(report.contains("stale-lock"), "{report}");
    p.ok(&create_args(&bundle, "second"));
    p.ok(&["delete", "--force", "second"]);
    standin.assert_nothing_left(&p);
}
