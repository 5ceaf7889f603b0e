//! containerd drives the runtime under test the way it drives runc: through its runc shim,
//! chosen with `ctr run --runc-binary`. Each test starts its own containerd (root, state,
//! socket, config, ctr namespace and runc root all in a temp dir, the daemon in a private
//! mount namespace so the shim sockets under `/run/containerd/s` stay private too) and
//! leaves nothing behind: no tasks, containers, processes, mounts or cgroups.
//!
//! Every scenario runs against plain runc as well: that proves the test right.

use proxcage_test_support as support;
use std::fs::{self, File};
use std::io;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use proxcage_process::run_captured;
use support::image::{
    busybox_image, mounts_under, run, run_in_pty, wait_until, MountSandbox, Ran, COMMAND_TIMEOUT,
    IMAGE_REF,
};
use support::pct::PctStandin;

/// A containerd of our own, stopped and cleaned up on drop.
struct Containerd {
    dir: tempfile::TempDir,
    sandbox: Option<MountSandbox>,
    daemon: Option<Child>,
    ctr: PathBuf,
    socket: PathBuf,
    namespace: String,
    runtime: PathBuf,
    runtime_root: PathBuf,
    proxcage_config: PathBuf,
    /// Environment the runtime needs besides its config (the pct stand-in's root).
    runtime_env: Vec<(String, PathBuf)>,
}

impl Containerd {
    /// Starts containerd with the busybox image imported; its shim will run `runtime`.
    fn start(runtime: &Path) -> Self {
        Containerd::start_with(runtime, support::HOST_CONFIG, Vec::new())
    }

    /// Starts containerd whose shim runs proxcage routed to the pct backend on `standin`.
    fn start_pct(standin: &PctStandin) -> Self {
        let env = vec![("PCT_STANDIN_ROOT".to_string(), standin.root.clone())];
        Containerd::start_with(&support::proxcage_bin(), &standin.proxcage_config(), env)
    }

    /// As [`Containerd::start`], with proxcage's config file text and the environment
    /// the runtime needs.
    fn start_with(
        runtime: &Path,
        proxcage_config_text: &str,
        runtime_env: Vec<(String, PathBuf)>,
    ) -> Self {
        support::require_root();
        let containerd = support::require_tool("containerd", "containerd");
        let ctr = support::require_tool("ctr", "containerd");
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let namespace = format!(
            "proxcage-e2e-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::SeqCst)
        );

        let dir = tempfile::Builder::new()
            .prefix("proxcage-e2e-containerd-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let socket = d.join("containerd.sock");
        let config = d.join("config.toml");
        fs::write(
            &config,
            format!(
                r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"#,
                d = d.display()
            ),
        )
        .unwrap();
        let proxcage_config = d.join("proxcage.toml");
        fs::write(&proxcage_config, proxcage_config_text).unwrap();
        // The shim puts its console sockets and exec process files in TMPDIR.
        fs::create_dir(d.join("tmp")).unwrap();
        let sandbox = MountSandbox::new(&d.join("sandbox"));
        let log = File::create(d.join("containerd.log")).unwrap();
        let mut daemon = sandbox.command(containerd);
        daemon
            .arg("--config")
            .arg(&config)
            // The shim and the runtime inherit containerd's environment.
            .env("PROXCAGE_CONFIG", &proxcage_config)
            .envs(runtime_env.iter().map(|(k, v)| (k, v)))
            .env("TMPDIR", d.join("tmp"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // SAFETY: prctl is async-signal-safe. containerd stops with a test process that
        // dies without unwinding (the holder of its namespace dies too).
        unsafe {
            daemon.pre_exec(
                || match libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) {
                    0 => Ok(()),
                    _ => Err(io::Error::last_os_error()),
                },
            );
        }
        let daemon = daemon.spawn().expect("start containerd");
        let mut ctd = Containerd {
            runtime_root: d.join("runtime-root"),
            dir,
            sandbox: Some(sandbox),
            daemon: Some(daemon),
            ctr,
            socket,
            namespace,
            runtime: runtime.to_path_buf(),
            proxcage_config,
            runtime_env,
        };
        let up = wait_until(Duration::from_secs(20), || {
            UnixStream::connect(&ctd.socket).is_ok()
                || ctd.daemon.as_mut().unwrap().try_wait().unwrap().is_some()
        });
        assert!(
            up && ctd.daemon.as_mut().unwrap().try_wait().unwrap().is_none(),
            "containerd did not come up\n{}",
            ctd.log_tail()
        );
        let image = busybox_image();
        run(
            ctd.ctr().args(["images", "import"]).arg(&image.archive),
            COMMAND_TIMEOUT,
        )
        .ok();
        ctd
    }

    /// `ctr` talking to this containerd, in this test's namespace.
    fn ctr(&self) -> Command {
        let mut cmd = Command::new(&self.ctr);
        cmd.arg("--address")
            .arg(&self.socket)
            .arg("--namespace")
            .arg(&self.namespace);
        cmd
    }

    /// `ctr run [flags] IMAGE ID ARGS...` with the runtime under test.
    fn ctr_run(&self, flags: &[&str], id: &str, args: &[&str]) -> Command {
        let mut cmd = self.ctr();
        cmd.arg("run")
            .args(flags)
            .arg("--runc-binary")
            .arg(&self.runtime)
            .arg("--runc-root")
            .arg(&self.runtime_root)
            .arg("--fifo-dir")
            .arg(self.fifo_dir())
            .args([IMAGE_REF, id])
            .args(args);
        cmd
    }

    /// `ctr task exec --exec-id EXEC_ID ID ARGS...`.
    fn ctr_exec(&self, exec_id: &str, id: &str, args: &[&str]) -> Command {
        let mut cmd = self.ctr();
        cmd.args(["task", "exec", "--exec-id", exec_id, "--fifo-dir"])
            .arg(self.fifo_dir())
            .arg(id)
            .args(args);
        cmd
    }

    fn fifo_dir(&self) -> PathBuf {
        self.dir.path().join("fifo")
    }

    /// The end of containerd's log (the shim's included) without its info and debug
    /// lines, for failure messages.
    fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains("level=info") && !l.contains("level=debug"))
            .collect();
        format!(
            "--- containerd log: warnings and errors\n{}",
            lines[lines.len().saturating_sub(15)..].join("\n")
        )
    }

    /// A command's result and containerd's log, for failure messages.
    fn explain(&self, ran: &Ran) -> String {
        format!("{ran}\n{}", self.log_tail())
    }

    /// Lines of `ctr <what> ls -q` (`task`, `container`).
    fn ctr_ls(&self, what: &str) -> Vec<String> {
        let ran = run(self.ctr().args([what, "ls", "-q"]), COMMAND_TIMEOUT).ok();
        ran.stdout.lines().map(str::to_owned).collect()
    }

    /// The containers the runtime itself still has (`list -q` in the root the shim gave it).
    fn runtime_list(&self) -> Vec<String> {
        let sandbox = self.sandbox.as_ref().unwrap();
        let ran = run(
            sandbox
                .command(&self.runtime)
                .env("PROXCAGE_CONFIG", &self.proxcage_config)
                .envs(self.runtime_env.iter().map(|(k, v)| (k, v)))
                .arg("--root")
                .arg(self.runtime_root.join(&self.namespace))
                .args(["list", "-q"]),
            COMMAND_TIMEOUT,
        )
        .ok();
        ran.stdout.lines().map(str::to_owned).collect()
    }

    /// Fails unless containerd and the runtime have no task or container left.
    #[track_caller]
    fn assert_nothing_left(&self) {
        assert_eq!(
            self.ctr_ls("task"),
            Vec::<String>::new(),
            "tasks left\n{}",
            self.log_tail()
        );
        assert_eq!(
            self.ctr_ls("container"),
            Vec::<String>::new(),
            "containers left\n{}",
            self.log_tail()
        );
        assert_eq!(
            self.runtime_list(),
            Vec::<String>::new(),
            "the runtime still lists containers"
        );
    }

    /// The status column of `ctr task ls` for `id`.
    fn task_status(&self, id: &str) -> Option<String> {
        let ran = run(self.ctr().args(["task", "ls"]), COMMAND_TIMEOUT).ok();
        ran.stdout.lines().skip(1).find_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            (cols.first() == Some(&id)).then(|| cols.last().unwrap_or(&"").to_string())
        })
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let quiet = |cmd: &mut Command| run_captured(cmd, COMMAND_TIMEOUT).ok();
        let mut problems = Vec::new();
        if let Some(mut daemon) = self.daemon.take() {
            if daemon.try_wait().ok().flatten().is_none() {
                // Whatever a failed test left: tasks killed and deleted, then containers.
                let ids = |what: &str| {
                    quiet(self.ctr().args([what, "ls", "-q"]))
                        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                        .unwrap_or_default()
                };
                for id in ids("task").lines() {
                    quiet(self.ctr().args(["task", "delete", "--force", id]));
                }
                for id in ids("container").lines() {
                    quiet(self.ctr().args(["container", "rm", id]));
                }
                let _ = kill(Pid::from_raw(daemon.id() as i32), Signal::SIGTERM);
                if !wait_until(Duration::from_secs(10), || {
                    daemon.try_wait().ok().flatten().is_some()
                }) {
                    problems.push("containerd ignored SIGTERM for 10 s".to_string());
                    let _ = daemon.kill();
                }
            }
            let _ = daemon.wait();
        }
        if let Some(sandbox) = self.sandbox.take() {
            let cgroup = format!("/{}", self.namespace);
            problems.extend(
                sandbox
                    .sweep(&cgroup)
                    .into_iter()
                    .map(|p| format!("left running: {p}")),
            );
        }
        problems.extend(
            mounts_under(self.dir.path())
                .into_iter()
                .map(|m| format!("left mounted: {m}")),
        );
        if problems.is_empty() {
            return;
        }
        let report = problems.join("\n");
        if thread::panicking() {
            eprintln!("cleaning up after the failed test:\n{report}");
        } else {
            panic!(
                "the test left things behind:\n{report}\n{}",
                self.log_tail()
            );
        }
    }
}

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
