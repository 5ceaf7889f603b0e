//! The pct backend (against the pct stand-in, test code that runs real LXC, not Proxmox)
//! under racing lifecycles: 16 proxcage processes running random interleavings of
//! create/start/kill/delete/list/state on 4 shared ids. Every command returns, `list`
//! always works, failures are the expected ones, and nothing is left afterwards: no CT,
//! no template, no record, no file. The seed is printed; `PROXCAGE_RACE_SEED` replays.

use proxcage_test_support as support;
use std::fs;

use support::busybox_bundle;
use support::pct::{proxcage_for, PctStandin};

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
