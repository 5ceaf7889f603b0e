//! The runc lifecycle through proxcage's runc and crun backends, with real runc and crun:
//! output, exit codes, state transitions, exec, ps, pause/resume, kill, delete. The same
//! scenarios run against plain runc, which proves the tests themselves right.

use proxcage_test_support as support;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{busybox_bundle, require_root, require_tool, Proxcage};

fn setup(backend: &str) -> Proxcage {
    require_root();
    require_tool(backend, backend);
    if backend == "runc" {
        Proxcage::with_default("runc")
    } else {
        Proxcage::with_default(backend)
    }
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn wait_for_status(p: &Proxcage, id: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // A container being started in the background may not exist yet.
        let out = p.run(&["state", id]);
        let status = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .map(|s| s["status"].as_str().unwrap_or_default().to_string())
            .unwrap_or_else(|_| stderr(&out));
        if status == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{id} stayed {status}, expected {want}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `run` prints the container's output and exits with its status.
fn run_output_and_exit_code(p: &Proxcage) {
    let bundle = busybox_bundle(
        p.dir.path(),
        "b",
        &["sh", "-c", "echo out; echo err >&2; exit 7"],
    );
    let out = p.run(&["run", "--bundle", bundle.to_str().unwrap(), "r1"]);
    assert_eq!(out.status.code(), Some(7), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "out\n");
    assert!(stderr(&out).contains("err\n"), "{}", stderr(&out));
    // A foreground run removes the container when it exits.
    assert_eq!(p.ok(&["list", "-q"]), "");
}

/// The container's process starts with no signal blocked and no standard signal ignored,
/// as with runc itself: a `kill` of a process that never unblocks signals (not a shell)
/// must work. (Real-time signals the test harness ignores pass down under runc too.)
fn no_blocked_signals(p: &Proxcage) {
    let bundle = busybox_bundle(
        p.dir.path(),
        "b",
        &["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"],
    );
    let out = p.run(&["run", "--bundle", bundle.to_str().unwrap(), "sigmask"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    let mask = |name: &str| {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line.split('\t').nth(1).unwrap(), 16).unwrap()
    };
    assert_eq!(mask("SigBlk:"), 0, "{text}");
    assert_eq!(mask("SigIgn:") & 0x7fff_ffff, 0, "{text}");
}

/// create -> created (pid, pid file) -> start -> running -> exec, ps -> kill -> stopped
/// -> delete.
fn full_lifecycle(p: &Proxcage, can_pause: bool) {
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    let pid_file = p.dir.path().join("c1.pid");
    p.ok(&[
        "create",
        "--bundle",
        bundle.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        "c1",
    ]);
    let state: serde_json::Value = serde_json::from_str(&p.ok(&["state", "c1"])).unwrap();
    assert_eq!(state["status"], "created");
    assert_eq!(state["id"], "c1");
    assert_eq!(state["bundle"], bundle.to_str().unwrap());
    assert_eq!(state["rootfs"], bundle.join("rootfs").to_str().unwrap());
    let pid = state["pid"].as_i64().unwrap();
    assert!(pid > 0);
    let pid_text = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(
        pid_text,
        pid.to_string(),
        "the pid file holds the pid without a newline"
    );

    p.ok(&["start", "c1"]);
    wait_for_status(p, "c1", "running");

    let out = p.run(&["exec", "c1", "sh", "-c", "echo in-exec $0; exit 5", "arg0"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(stdout(&out), "in-exec arg0\n");

    let pids: Vec<i64> = serde_json::from_str(&p.ok(&["ps", "--format", "json", "c1"])).unwrap();
    assert!(pids.contains(&pid), "ps {pids:?} lacks the init {pid}");
    let table = p.ok(&["ps", "c1"]);
    assert!(
        table.starts_with("UID") && table.contains("sleep 1000"),
        "{table}"
    );

    if can_pause {
        p.ok(&["pause", "c1"]);
        assert_eq!(p.status("c1"), "paused");
        p.ok(&["resume", "c1"]);
        assert_eq!(p.status("c1"), "running");
    } else {
        let out = p.run(&["pause", "c1"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("pause needs the container's cgroup"),
            "{}",
            stderr(&out)
        );
    }

    let out = p.run(&["delete", "c1"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a running container is not deleted without --force"
    );
    p.ok(&["kill", "c1", "KILL"]);
    wait_for_status(p, "c1", "stopped");
    let state: serde_json::Value = serde_json::from_str(&p.ok(&["state", "c1"])).unwrap();
    assert_eq!(state["pid"], 0);
    let list: serde_json::Value =
        serde_json::from_str(&p.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(list[0]["id"], "c1");
    assert_eq!(list[0]["status"], "stopped");
    p.ok(&["delete", "c1"]);
    assert_eq!(p.ok(&["list", "-q"]), "");
    assert!(support::process_gone(pid), "the container's init is gone");
}

/// `run` of a container killed with SIGKILL exits 137; `kill` defaults to SIGTERM.
fn kill_exit_codes(p: &Proxcage) {
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    let mut child = p
        .cmd()
        .args(["run", "--bundle", bundle.to_str().unwrap(), "k1"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_status(p, "k1", "running");
    p.ok(&["kill", "k1", "SIGKILL"]);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(137));
    assert_eq!(p.ok(&["list", "-q"]), "");

    // sh as pid 1 ignores SIGTERM unless it traps it: trap it and exit 42.
    let bundle = busybox_bundle(
        p.dir.path(),
        "t",
        &[
            "sh",
            "-c",
            "trap 'exit 42' TERM; while :; do sleep 0.1; done",
        ],
    );
    let mut child = p
        .cmd()
        .args(["run", "--bundle", bundle.to_str().unwrap(), "k2"])
        .spawn()
        .unwrap();
    wait_for_status(p, "k2", "running");
    std::thread::sleep(Duration::from_millis(200));
    p.ok(&["kill", "k2"]);
    assert_eq!(child.wait().unwrap().code(), Some(42));

    // SIGTERM sent to the foreground `run` process itself (as a supervisor would) is
    // passed on to the container.
    let mut child = p
        .cmd()
        .args(["run", "--bundle", bundle.to_str().unwrap(), "k3"])
        .spawn()
        .unwrap();
    wait_for_status(p, "k3", "running");
    std::thread::sleep(Duration::from_millis(200));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(42));
    assert_eq!(p.ok(&["list", "-q"]), "");
}

/// `run --detach`, `delete` of a created container without --force, `delete --force` of
/// an unknown id.
fn detach_and_delete(p: &Proxcage) {
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    p.ok(&[
        "run",
        "--detach",
        "--bundle",
        bundle.to_str().unwrap(),
        "d1",
    ]);
    assert_eq!(p.status("d1"), "running");
    p.ok(&["delete", "--force", "d1"]);
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "d2"]);
    p.ok(&["delete", "d2"]);
    p.ok(&["delete", "--force", "never-existed"]);
    let out = p.run(&["delete", "never-existed"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    let out = p.run(&["kill", "never-existed"]);
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    assert_eq!(p.ok(&["list", "-q"]), "");
}

/// A kill of a container whose process has exited fails in runc's words, whatever the
/// backend: containerd's shim and podman match "container not running".
fn kill_of_a_stopped_container(p: &Proxcage) {
    let bundle = busybox_bundle(p.dir.path(), "b", &["true"]);
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "s1"]);
    p.ok(&["start", "s1"]);
    wait_for_status(p, "s1", "stopped");
    let out = p.run(&["kill", "s1", "TERM"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("container not running"),
        "{}",
        stderr(&out)
    );
    p.ok(&["delete", "s1"]);
    assert_eq!(p.ok(&["list", "-q"]), "");
}

/// fd 3 of the caller reaches the container with --preserve-fds 1, and with
/// LISTEN_FDS=1 meant for proxcage (socket activation).
/// runc sets LISTEN_FDS in the container; crun 1.8.1 passes the fds and sets only
/// LISTEN_PID=1, run directly or through proxcage alike.
fn inherited_fds(p: &Proxcage, backend: &str) {
    let bundle = busybox_bundle(
        p.dir.path(),
        "b",
        &[
            "sh",
            "-c",
            "echo via-fd3 LISTEN_FDS=$LISTEN_FDS LISTEN_PID=$LISTEN_PID >&3",
        ],
    );
    for (id, socket_activation) in [("f1", false), ("f2", true)] {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let write_fd = write.as_raw_fd();
        let mut cmd = if socket_activation {
            // LISTEN_PID must name the proxcage process itself, known only once it runs.
            let mut cmd = Command::new("/bin/sh");
            cmd.args(["-c", "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\""])
                .arg(&p.bin)
                .args(["--root", p.root.to_str().unwrap()])
                .env("PROXCAGE_CONFIG", &p.config)
                .args(["run", "--bundle", bundle.to_str().unwrap(), id]);
            cmd
        } else {
            let mut cmd = p.cmd();
            cmd.args([
                "run",
                "--preserve-fds",
                "1",
                "--bundle",
                bundle.to_str().unwrap(),
                id,
            ]);
            cmd
        };
        // SAFETY: dup2 is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(write_fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let status = cmd.status().unwrap();
        drop(write);
        assert!(status.success(), "{id}: {status}");
        let mut got = String::new();
        std::fs::File::from(read).read_to_string(&mut got).unwrap();
        let want = match (socket_activation, backend) {
            (false, _) => "via-fd3 LISTEN_FDS= LISTEN_PID=\n",
            (true, "crun") => "via-fd3 LISTEN_FDS= LISTEN_PID=1\n",
            (true, _) => "via-fd3 LISTEN_FDS=1 LISTEN_PID=1\n",
        };
        assert_eq!(got, want, "{id}");
    }
}

/// `kill --all` reaches every process of the container, not only its init.
fn kill_all(p: &Proxcage) {
    let bundle = busybox_bundle(
        p.dir.path(),
        "b",
        &["sh", "-c", "sleep 1000 & sleep 1001 & wait"],
    );
    p.ok(&[
        "run",
        "--detach",
        "--bundle",
        bundle.to_str().unwrap(),
        "ka",
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let pids = loop {
        let pids: Vec<i64> =
            serde_json::from_str(&p.ok(&["ps", "--format", "json", "ka"])).unwrap();
        if pids.len() == 3 || Instant::now() > deadline {
            break pids;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(pids.len(), 3, "sh and two sleeps: {pids:?}");
    p.ok(&["kill", "--all", "ka", "KILL"]);
    wait_for_status(p, "ka", "stopped");
    for pid in pids {
        assert!(support::process_gone(pid), "{pid} survived kill --all");
    }
    p.ok(&["delete", "ka"]);
}

/// The pids of container `id` whose command line is `argv`, waiting up to 10 s for one.
fn pids_running(p: &Proxcage, id: &str, argv: &[&str]) -> Vec<i64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids: Vec<i64> = serde_json::from_str(&p.ok(&["ps", "--format", "json", id])).unwrap();
        let matching: Vec<i64> = pids
            .into_iter()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    c.split(|&b| b == 0)
                        .filter(|a| !a.is_empty())
                        .eq(argv.iter().map(|a| a.as_bytes()))
                })
            })
            .collect();
        if !matching.is_empty() || Instant::now() > deadline {
            return matching;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` ignores SIGTERM (its SigIgn mask in /proc).
fn ignores_sigterm(pid: i64) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (libc::SIGTERM - 1)) != 0)
}

/// `kill --all TERM` reaches a background process, not only the container's main one:
/// the shell ignores SIGTERM, so only a signal to every process ends the sleep (and with
/// it the shell's wait).
fn kill_all_reaches_a_background_process(p: &Proxcage) {
    let shell = ["sh", "-c", "sleep 1000 & trap '' TERM; wait"];
    let bundle = busybox_bundle(p.dir.path(), "b", &shell);
    p.ok(&[
        "run",
        "--detach",
        "--bundle",
        bundle.to_str().unwrap(),
        "kt",
    ]);
    let sleep = pids_running(p, "kt", &["sleep", "1000"]);
    assert_eq!(sleep.len(), 1, "one sleep in the container: {sleep:?}");
    let shells = pids_running(p, "kt", &shell);
    assert_eq!(shells.len(), 1, "one shell in the container: {shells:?}");
    // The shell must ignore the signal before it comes: a shell it killed would end the
    // container, and the sleep with it, whichever processes were signalled.
    assert!(
        support::image::wait_until(Duration::from_secs(10), || ignores_sigterm(shells[0])),
        "the shell never set its trap"
    );
    p.ok(&["kill", "--all", "kt", "TERM"]);
    assert!(
        support::image::wait_until(Duration::from_secs(10), || support::process_gone(sleep[0])),
        "the background sleep {} survived kill --all TERM",
        sleep[0]
    );
    // The shell's wait returns with the sleep gone: the container stops.
    wait_for_status(p, "kt", "stopped");
    p.ok(&["delete", "kt"]);
}

/// A second `start` fails in runc's words, whatever the backend (crun's own, which
/// follow them, are only about its exec.fifo); a `delete` of a running container says to stop it or use `--force`
/// (runc's own words do not: proxcage adds it).
fn start_twice_and_delete_running(p: &Proxcage, backend: &str) {
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "twice"]);
    p.ok(&["start", "twice"]);
    let out = p.run(&["start", "twice"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // runc's words lead (crun's own about its exec.fifo may follow in parentheses).
    assert!(
        stderr(&out).contains("cannot start an already running container"),
        "{}",
        stderr(&out)
    );
    let out = p.run(&["delete", "twice"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("stopped"), "{}", stderr(&out));
    if backend != "plain" {
        assert!(
            stderr(&out).contains("stop it first ('kill'), or use 'delete --force'"),
            "{}",
            stderr(&out)
        );
    }
    p.ok(&["delete", "--force", "twice"]);
    assert_eq!(p.ok(&["list", "-q"]), "");
}

/// `list --format json` gives each container the state `state` gives (plus its backend),
/// with an OWNER.
fn list_agrees_with_state(p: &Proxcage) {
    let bundle = busybox_bundle(p.dir.path(), "b", &["sleep", "1000"]);
    support::edit_config(&bundle, |spec| {
        spec["annotations"] = serde_json::json!({ "org.example.team": "ops" })
    });
    p.ok(&["create", "--bundle", bundle.to_str().unwrap(), "ls"]);
    let state: serde_json::Value = serde_json::from_str(&p.ok(&["state", "ls"])).unwrap();
    let listed: serde_json::Value =
        serde_json::from_str(&p.ok(&["list", "--format", "json"])).unwrap();
    let mut row = listed[0].clone();
    row.as_object_mut().unwrap().remove("backend");
    for field in [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
        "annotations",
    ] {
        assert_eq!(
            row[field], state[field],
            "{field}: list {row} state {state}"
        );
    }
    assert_eq!(row["annotations"]["org.example.team"], "ops", "{row}");
    assert!(
        !row["rootfs"].as_str().unwrap_or_default().is_empty(),
        "{row}"
    );
    assert!(
        !row["owner"].as_str().unwrap_or_default().is_empty(),
        "{row}"
    );
    let table = p.ok(&["list"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    let cells: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    let owner = header.iter().position(|h| *h == "OWNER").unwrap();
    assert_eq!(cells.get(owner).copied(), row["owner"].as_str(), "{table}");
    p.ok(&["delete", "--force", "ls"]);
}

macro_rules! per_backend {
    ($($name:ident => $body:expr;)*) => {
        mod runc {
            use super::*;
            $( #[test] fn $name() { let p = setup("runc"); let f: fn(&Proxcage, &str) = $body; f(&p, "runc"); } )*
        }
        mod crun {
            use super::*;
            $( #[test] fn $name() { let p = setup("crun"); let f: fn(&Proxcage, &str) = $body; f(&p, "crun"); } )*
        }
        /// The same scenarios against runc itself.
        mod plain_runc {
            use super::*;
            $( #[test] fn $name() { require_root(); let p = Proxcage::plain_runc(); let f: fn(&Proxcage, &str) = $body; f(&p, "plain"); } )*
        }
    };
}

per_backend! {
    run_prints_output_and_returns_the_exit_code => |p, _| run_output_and_exit_code(p);
    create_start_exec_ps_kill_delete => |p, backend| full_lifecycle(p, backend != "crun");
    killed_run_exits_137_and_kill_defaults_to_sigterm => |p, _| kill_exit_codes(p);
    detach_and_delete_rules => |p, _| detach_and_delete(p);
    inherited_fds_reach_the_container => |p, backend| inherited_fds(p, backend);
    kill_all_reaches_every_process => |p, _| kill_all(p);
    the_process_starts_with_no_signal_blocked => |p, _| no_blocked_signals(p);
    a_kill_of_a_stopped_container_says_not_running => |p, _| kill_of_a_stopped_container(p);
    kill_all_reaches_a_background_process_ignored_by_the_shell => |p, _| kill_all_reaches_a_background_process(p);
    start_twice_and_delete_of_a_running_container_say_what_to_do => |p, backend| start_twice_and_delete_running(p, backend);
    list_gives_the_state_that_state_gives => |p, _| list_agrees_with_state(p);
}

/// The kill scenarios on the pct backend, against the pct stand-in (test code running
/// real LXC, not Proxmox).
mod pct {
    use super::*;
    use support::pct::{proxcage_for, PctStandin};

    fn on_pct(scenario: fn(&Proxcage)) {
        let standin = PctStandin::new();
        let p = proxcage_for(&standin);
        scenario(&p);
        standin.assert_nothing_left(&p);
    }

    #[test]
    fn a_kill_of_a_stopped_container_says_not_running() {
        on_pct(kill_of_a_stopped_container);
    }

    #[test]
    fn kill_all_reaches_a_background_process_ignored_by_the_shell() {
        on_pct(kill_all_reaches_a_background_process);
    }

    #[test]
    fn list_gives_the_state_that_state_gives() {
        on_pct(list_agrees_with_state);
    }
}
