//! A containerd of a test's own: root, state, socket, config, namespace and runtime root
//! all in a temp dir, the daemon in a private mount namespace so the shim sockets under
//! `/run/containerd/s` and the network namespaces under `/run/netns` stay private too.
//! Dropping it removes whatever a failed test left and fails the test if anything was
//! still running or mounted. Its shims run the runtime under test: with `ctr run
//! --runc-binary`, or, with the CRI plugin on, as the CRI runtime's `BinaryName`.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use proxcage_process::run_captured;

use crate::cni::{CniNetwork, CNI_BIN_DIR};
use crate::image::{
    busybox_image, leftovers, pause_image, report_leftovers, run, wait_until, BusyboxImage,
    MountSandbox, Ran, COMMAND_TIMEOUT, IMAGE_REF, PAUSE_REF,
};
use crate::pct::PctStandin;

/// The containerd namespace the CRI plugin keeps its pods and containers in.
pub const CRI_NAMESPACE: &str = "k8s.io";

/// A containerd of our own, stopped and cleaned up on drop.
#[derive(Debug)]
pub struct Containerd {
    pub dir: tempfile::TempDir,
    sandbox: Option<MountSandbox>,
    daemon: Option<Child>,
    ctr: PathBuf,
    /// containerd's gRPC socket (the CRI services too, when the plugin is on).
    pub socket: PathBuf,
    /// The namespace `ctr` works in: the test's own, or [`CRI_NAMESPACE`].
    pub namespace: String,
    runtime: PathBuf,
    runtime_root: PathBuf,
    proxcage_config: PathBuf,
    /// Environment the runtime needs besides its config (the pct stand-in's root).
    runtime_env: Vec<(String, PathBuf)>,
    /// The cgroup subtree the containers are in, swept on drop.
    cgroup: String,
}

/// What the CRI plugin is set up with.
#[derive(Debug)]
pub struct CriPlugin<'a> {
    /// The network the plugin's CNI uses (its conflist directory is the plugin's conf_dir).
    pub network: &'a CniNetwork,
    /// The cgroup parent the test gives its pods: swept on drop.
    pub cgroup_parent: &'a str,
}

impl Containerd {
    /// Starts containerd with the busybox image imported; its shim will run `runtime`.
    pub fn start(runtime: &Path) -> Self {
        Containerd::start_with(runtime, crate::HOST_CONFIG, Vec::new(), None)
    }

    /// Starts containerd whose shim runs proxcage routed to the pct backend on `standin`.
    pub fn start_pct(standin: &PctStandin) -> Self {
        let env = vec![("PCT_STANDIN_ROOT".to_string(), standin.root.clone())];
        Containerd::start_with(
            &crate::proxcage_bin(),
            &standin.proxcage_config(),
            env,
            None,
        )
    }

    /// As [`Containerd::start`], with proxcage's config file text, the environment the
    /// runtime needs and, with `cri`, the CRI plugin on (the busybox and pause images in
    /// its namespace) and `runtime` its only runtime.
    pub fn start_with(
        runtime: &Path,
        proxcage_config_text: &str,
        runtime_env: Vec<(String, PathBuf)>,
        cri: Option<CriPlugin<'_>>,
    ) -> Self {
        crate::require_root();
        let containerd = crate::require_tool("containerd", "containerd");
        let ctr = crate::require_tool("ctr", "containerd");
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let own_namespace = format!(
            "proxcage-e2e-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::SeqCst)
        );
        let (namespace, cgroup) = match &cri {
            Some(plugin) => (CRI_NAMESPACE.to_string(), plugin.cgroup_parent.to_string()),
            None => (own_namespace.clone(), format!("/{own_namespace}")),
        };

        let dir = tempfile::Builder::new()
            .prefix("proxcage-e2e-containerd-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        // containerd makes its state 0711 so that a container's root, an unprivileged
        // CT's root (uid 100000) on pct too, reaches what is bound in from it (the pod's
        // /dev/shm): the test's copy of it is the same.
        fs::set_permissions(d, fs::Permissions::from_mode(0o711)).unwrap();
        let socket = d.join("containerd.sock");
        let config = d.join("config.toml");
        fs::write(&config, config_text(d, runtime, cri.as_ref())).unwrap();
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
            cgroup,
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
        ctd.import(busybox_image());
        if cri.is_some() {
            ctd.import(pause_image());
        }
        ctd
    }

    fn import(&self, image: &BusyboxImage) {
        let ran = run(
            self.ctr().args(["images", "import"]).arg(&image.archive),
            COMMAND_TIMEOUT,
        );
        assert_eq!(ran.code, 0, "ctr images import\n{}", self.explain(&ran));
    }

    /// `ctr` talking to this containerd, in this test's namespace.
    pub fn ctr(&self) -> Command {
        let mut cmd = Command::new(&self.ctr);
        cmd.arg("--address")
            .arg(&self.socket)
            .arg("--namespace")
            .arg(&self.namespace);
        cmd
    }

    /// `ctr run [flags] IMAGE ID ARGS...` with the runtime under test.
    pub fn ctr_run(&self, flags: &[&str], id: &str, args: &[&str]) -> Command {
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
    pub fn ctr_exec(&self, exec_id: &str, id: &str, args: &[&str]) -> Command {
        let mut cmd = self.ctr();
        cmd.args(["task", "exec", "--exec-id", exec_id, "--fifo-dir"])
            .arg(self.fifo_dir())
            .arg(id)
            .args(args);
        cmd
    }

    pub fn fifo_dir(&self) -> PathBuf {
        self.dir.path().join("fifo")
    }

    /// The private mount namespace containerd runs in.
    pub fn sandbox(&self) -> &MountSandbox {
        // Only Drop takes it.
        self.sandbox.as_ref().unwrap()
    }

    /// The end of containerd's log (the shim's included) without its info and debug
    /// lines, for failure messages.
    pub fn log_tail(&self) -> String {
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
    pub fn explain(&self, ran: &Ran) -> String {
        format!("{ran}\n{}", self.log_tail())
    }

    /// Lines of `ctr <what> ls -q` (`task`, `container`).
    pub fn ctr_ls(&self, what: &str) -> Vec<String> {
        let ran = run(self.ctr().args([what, "ls", "-q"]), COMMAND_TIMEOUT).ok();
        ran.stdout.lines().map(str::to_owned).collect()
    }

    /// The containers the runtime itself still has (`list -q` in the root the shim gave it).
    pub fn runtime_list(&self) -> Vec<String> {
        let ran = run(
            self.sandbox()
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
    pub fn assert_nothing_left(&self) {
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
    pub fn task_status(&self, id: &str) -> Option<String> {
        let ran = run(self.ctr().args(["task", "ls"]), COMMAND_TIMEOUT).ok();
        ran.stdout.lines().skip(1).find_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            (cols.first() == Some(&id)).then(|| cols.last().unwrap_or(&"").to_string())
        })
    }
}

/// containerd's config: everything under `d`; the CRI plugin off, or on with `runtime`
/// as its one runtime and this host's limits.
fn config_text(d: &Path, runtime: &Path, cri: Option<&CriPlugin<'_>>) -> String {
    let disabled = match cri {
        Some(_) => "[]",
        None => r#"["io.containerd.grpc.v1.cri"]"#,
    };
    let mut text = format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = {disabled}

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"#,
        d = d.display()
    );
    let Some(cri) = cri else {
        return text;
    };
    // Without CAP_SYS_RESOURCE no process may lower its oom_score_adj below containerd's:
    // restrict_oom_score_adj raises the pause container's -998 to it. The sandbox image
    // is made here (there is no registry to pull one from).
    let cri_table = r#"plugins."io.containerd.grpc.v1.cri""#;
    text.push_str(&format!(
        r#"
[{cri_table}]
  sandbox_image = "{PAUSE_REF}"
  restrict_oom_score_adj = true
  stream_server_port = "0"

[{cri_table}.containerd]
  default_runtime_name = "under-test"

[{cri_table}.containerd.runtimes.under-test]
  runtime_type = "io.containerd.runc.v2"

[{cri_table}.containerd.runtimes.under-test.options]
  BinaryName = "{runtime}"
  Root = "{d}/runtime-root"

[{cri_table}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{conf_dir}"
  max_conf_num = 1
"#,
        runtime = runtime.display(),
        d = d.display(),
        conf_dir = cri.network.dir.display(),
    ));
    text
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
        problems.extend(leftovers(
            self.sandbox.take(),
            &self.cgroup,
            self.dir.path(),
        ));
        report_leftovers(&problems, &format!("\n{}", self.log_tail()));
    }
}
