//! containerd drives the runtime under test the way it drives runc: through its runc shim,
//! chosen with `ctr run --runc-binary`. Each test starts its own containerd
//! (`support::containerd`: root, state, socket, config, ctr namespace and runc root all in
//! a temp dir, the daemon in a private mount namespace) and leaves nothing behind: no
//! tasks, containers, processes, mounts or cgroups.
//!
//! Every scenario runs against plain runc as well: that proves the test right.

use proxcage_test_support as support;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use support::containerd::Containerd;
use support::image::{run, run_in_pty, wait_until, Ran, COMMAND_TIMEOUT};
use support::pct::PctStandin;

fn runc() -> PathBuf {
    support::require_tool("runc", "runc")
}

// ---- scenarios ------------------------------------------------------------------------

/// `ctr run --rm`: the container's stdout and stderr reach ctr's, its exit code is ctr's.
fn run_rm(ctd: Containerd) {
    let ran = run(
        &mut ctd.ctr_run(
            &["--rm"],
            "run-rm",
            &["sh", "-c", "echo out; echo err >&2; exit 7"],
        ),
        COMMAND_TIMEOUT,
    );
    assert_eq!(ran.code, 7, "exit code\n{}", ctd.explain(&ran));
    assert_eq!(ran.stdout, "out\n", "stdout\n{}", ctd.explain(&ran));
    assert!(
        ran.stderr.lines().any(|l| l == "err"),
        "stderr\n{}",
        ctd.explain(&ran)
    );
    ctd.assert_nothing_left();
}

/// `ctr run -d`, two execs (output, exit code), `task kill -s SIGNAL`, `task delete` (exit
/// status 128 + SIGNAL), `container rm`: nothing is left.
///
/// With `standin`, the task must be a CT there while it runs.
fn detached_exec_kill_delete(ctd: Containerd, signal: Signal, standin: Option<&PctStandin>) {
    let id = "detached";
    let ran = run(
        &mut ctd.ctr_run(&["-d"], id, &["sleep", "1000"]),
        COMMAND_TIMEOUT,
    );
    assert_eq!(ran.code, 0, "ctr run -d\n{}", ctd.explain(&ran));
    assert_eq!(
        ctd.task_status(id).as_deref(),
        Some("RUNNING"),
        "ctr task ls\n{}",
        ctd.log_tail()
    );
    if let Some(standin) = standin {
        let cts = standin.pct_ok(&["list"]);
        assert_eq!(cts.lines().count(), 2, "one CT running:\n{cts}");
        assert!(cts.contains(" running "), "{cts}");
    }

    let ran = run(&mut ctd.ctr_exec("x", id, &["echo", "hi"]), COMMAND_TIMEOUT);
    assert_eq!(
        (ran.code, ran.stdout.as_str()),
        (0, "hi\n"),
        "exec\n{}",
        ctd.explain(&ran)
    );
    let ran = run(
        &mut ctd.ctr_exec("y", id, &["sh", "-c", "exit 5"]),
        COMMAND_TIMEOUT,
    );
    assert_eq!(ran.code, 5, "exec exit code\n{}", ctd.explain(&ran));

    let ran = run(
        ctd.ctr().args(["task", "kill", "-s", signal.as_str(), id]),
        COMMAND_TIMEOUT,
    );
    assert_eq!(ran.code, 0, "ctr task kill\n{}", ctd.explain(&ran));
    let stopped = wait_until(Duration::from_secs(10), || {
        ctd.task_status(id).as_deref() == Some("STOPPED")
    });
    assert!(
        stopped,
        "task not STOPPED 10 s after {signal}: {:?}\n{}",
        ctd.task_status(id),
        ctd.log_tail()
    );
    let ran = run(ctd.ctr().args(["task", "delete", id]), COMMAND_TIMEOUT);
    assert_eq!(ran.code, 0, "ctr task delete\n{}", ctd.explain(&ran));
    let code = 128 + signal as i32;
    assert!(
        ran.stderr.contains(&format!("exit code {code}")),
        "exit status of a task killed by {signal}\n{}",
        ctd.explain(&ran)
    );
    let ran = run(ctd.ctr().args(["container", "rm", id]), COMMAND_TIMEOUT);
    assert_eq!(ran.code, 0, "ctr container rm\n{}", ctd.explain(&ran));
    ctd.assert_nothing_left();
}

/// tests/containerd-update (the task service's Update, which `ctr` 1.6 has no command
/// for), built once from Debian's Go packages.
fn containerd_update_tool() -> &'static Path {
    static TOOL: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    TOOL.get_or_init(|| {
        let go = support::require_tool("go", "golang-go");
        let gopath = Path::new("/usr/share/gocode");
        assert!(
            gopath.join("src/github.com/containerd/containerd/client.go").exists(),
            "the containerd client's Go source is missing: install the Debian package golang-github-containerd-containerd-dev"
        );
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/containerd-update");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("containerd-update");
        let ran = run(
            Command::new(go)
                .args(["build", "-o"])
                .arg(&out)
                .arg(".")
                .current_dir(&src)
                .env("GO111MODULE", "off")
                .env("GOPATH", gopath)
                .env("GOCACHE", Path::new(env!("CARGO_TARGET_TMPDIR")).join("gocache")),
            Duration::from_secs(600),
        );
        assert_eq!(ran.code, 0, "go build of tests/containerd-update\n{ran}");
        out
    })
}

/// The task service's Update (what CRI's UpdateContainerResources calls) on a running
/// task: the shim hands the resources to the runtime's `update --resources -`, and the
/// container's cgroup has the new limits. With `standin`, `pct config` shows them too.
fn task_update(ctd: Containerd, standin: Option<&PctStandin>) {
    let tool = containerd_update_tool();
    let id = "updated";
    let ran = run(
        &mut ctd.ctr_run(&["-d"], id, &["sleep", "1000"]),
        COMMAND_TIMEOUT,
    );
    assert_eq!(ran.code, 0, "ctr run -d\n{}", ctd.explain(&ran));
    let ran = run(
        Command::new(tool)
            .arg(&ctd.socket)
            .arg(&ctd.namespace)
            .args([id, "268435456", "50000", "100000"]),
        COMMAND_TIMEOUT,
    );
    assert_eq!(ran.code, 0, "task Update\n{}", ctd.explain(&ran));
    let pid = match standin {
        Some(standin) => {
            let cts = standin.pct_ok(&["list"]);
            let vmid = cts
                .lines()
                .nth(1)
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or_else(|| panic!("no CT in pct list:\n{cts}"));
            let config = standin.pct_ok(&["config", vmid]);
            for line in ["memory: 256", "cpulimit: 0.5"] {
                assert!(
                    config.lines().any(|l| l == line),
                    "{line:?} not in\n{config}"
                );
            }
            standin.lxc_pid(vmid.parse().unwrap()).unwrap()
        }
        None => {
            let ran = run(ctd.ctr().args(["task", "ls"]), COMMAND_TIMEOUT).ok();
            let row = ran
                .stdout
                .lines()
                .find(|l| l.starts_with(id))
                .unwrap()
                .to_string();
            row.split_whitespace().nth(1).unwrap().parse().unwrap()
        }
    };
    support::assert_cgroup(
        pid,
        &[
            ("memory", "memory.limit_in_bytes", "268435456"),
            ("cpu", "cpu.cfs_quota_us", "50000"),
        ],
    );
    let ran = run(
        ctd.ctr().args(["task", "kill", "-s", "SIGKILL", id]),
        COMMAND_TIMEOUT,
    );
    assert_eq!(ran.code, 0, "ctr task kill\n{}", ctd.explain(&ran));
    assert!(wait_until(Duration::from_secs(10), || {
        ctd.task_status(id).as_deref() == Some("STOPPED")
    }));
    run(ctd.ctr().args(["task", "delete", id]), COMMAND_TIMEOUT).ok();
    run(ctd.ctr().args(["container", "rm", id]), COMMAND_TIMEOUT).ok();
    ctd.assert_nothing_left();
}

/// `ctr run -t` from a terminal: the container's stdio is a terminal of its own.
fn tty(ctd: Containerd) {
    let script = "tty; test -t 0 && echo stdin-is-a-tty; exit 4";
    let ran = run_in_pty(
        &mut ctd.ctr_run(&["--rm", "-t"], "tty", &["sh", "-c", script]),
        COMMAND_TIMEOUT,
    );
    assert_has_terminal(&ctd, &ran);
    assert_eq!(ran.code, 4, "exit code\n{}", ctd.explain(&ran));

    // `ctr task exec -t` into a running task: a terminal of its own too.
    let ran = run(
        &mut ctd.ctr_run(&["-d"], "tty-exec", &["sleep", "1000"]),
        COMMAND_TIMEOUT,
    );
    assert_eq!(ran.code, 0, "ctr run -d\n{}", ctd.explain(&ran));
    let mut exec = ctd.ctr();
    exec.args(["task", "exec", "-t", "--exec-id", "t", "--fifo-dir"])
        .arg(ctd.fifo_dir())
        .args(["tty-exec", "sh", "-c", script]);
    let ran = run_in_pty(&mut exec, COMMAND_TIMEOUT);
    assert_has_terminal(&ctd, &ran);
    assert_eq!(ran.code, 4, "exec exit code\n{}", ctd.explain(&ran));
    let ran = run(
        ctd.ctr()
            .args(["task", "kill", "-s", "SIGKILL", "tty-exec"]),
        COMMAND_TIMEOUT,
    );
    assert_eq!(ran.code, 0, "ctr task kill\n{}", ctd.explain(&ran));
    wait_until(Duration::from_secs(10), || {
        ctd.task_status("tty-exec").as_deref() == Some("STOPPED")
    });
    run(
        ctd.ctr().args(["task", "delete", "tty-exec"]),
        COMMAND_TIMEOUT,
    )
    .ok();
    run(
        ctd.ctr().args(["container", "rm", "tty-exec"]),
        COMMAND_TIMEOUT,
    )
    .ok();
    ctd.assert_nothing_left();
}

/// The script's output shows a /dev/pts terminal on stdin.
#[track_caller]
fn assert_has_terminal(ctd: &Containerd, ran: &Ran) {
    let lines: Vec<&str> = ran.stdout.lines().collect();
    let pts = lines.iter().any(|l| {
        l.strip_prefix("/dev/pts/")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    });
    assert!(
        pts && lines.contains(&"stdin-is-a-tty"),
        "no terminal in the container\n{}",
        ctd.explain(ran)
    );
}

// ---- tests ----------------------------------------------------------------------------

#[test]
fn containerd_run_rm_with_runc() {
    run_rm(Containerd::start(&runc()));
}

#[test]
fn containerd_run_rm_with_proxcage() {
    run_rm(Containerd::start(&support::proxcage_bin()));
}

/// A Proxmox container (through the pct stand-in: test code, not Proxmox) under
/// containerd: its init is not the shim's child, proxcage's monitor stands in for it.
#[test]
fn containerd_run_rm_with_pct() {
    let standin = PctStandin::new();
    run_rm(Containerd::start_pct(&standin));
    standin.assert_no_ct();
}

/// SIGKILL: `sleep` is the container's PID 1 under runc, which ignores SIGTERM.
#[test]
fn containerd_detached_exec_kill_delete_with_runc() {
    detached_exec_kill_delete(Containerd::start(&runc()), Signal::SIGKILL, None);
}

#[test]
fn containerd_detached_exec_kill_delete_with_proxcage() {
    detached_exec_kill_delete(
        Containerd::start(&support::proxcage_bin()),
        Signal::SIGKILL,
        None,
    );
}

/// SIGTERM: in a pct container proxcage-init is PID 1 and passes the signal on to `sleep`,
/// which dies of it.
#[test]
fn containerd_detached_exec_kill_delete_with_pct() {
    let standin = PctStandin::new();
    detached_exec_kill_delete(
        Containerd::start_pct(&standin),
        Signal::SIGTERM,
        Some(&standin),
    );
    standin.assert_no_ct();
}

#[test]
fn containerd_task_update_with_runc() {
    task_update(Containerd::start(&runc()), None);
}

#[test]
fn containerd_task_update_with_proxcage() {
    task_update(Containerd::start(&support::proxcage_bin()), None);
}

#[test]
fn containerd_task_update_with_pct() {
    let standin = PctStandin::new();
    task_update(Containerd::start_pct(&standin), Some(&standin));
    standin.assert_no_ct();
}

#[test]
fn containerd_tty_with_runc() {
    tty(Containerd::start(&runc()));
}

#[test]
fn containerd_tty_with_proxcage() {
    tty(Containerd::start(&support::proxcage_bin()));
}

#[test]
fn containerd_tty_with_pct() {
    let standin = PctStandin::new();
    tty(Containerd::start_pct(&standin));
    standin.assert_no_ct();
}
