//! podman drives the runtime under test the way it drives runc: `podman --runtime <bin>`,
//! with conmon calling `create` and `exec`, podman `start`, `kill` and `delete`. Each test
//! has its own storage (vfs), config, lock files and cgroup parent in a temp dir, and runs
//! podman in a private mount namespace: podman calls the runtime without `--root`, so the
//! runtime's default root under `/run` (runc's `/run/runc`) is private to the test too.
//! Nothing is left behind: no containers, processes, mounts or cgroups.
//!
//! Every scenario runs against plain runc as well: that proves the test right.

use proxcage_test_support as support;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use proxcage_process::run_captured;
use support::cni::CniNetwork;
use support::image::{
    busybox_image, leftovers, report_leftovers, run, wait_until, MountSandbox, COMMAND_TIMEOUT,
    IMAGE_REF,
};
use support::pct::PctStandin;

/// podman with private storage, configuration and runtime root; cleaned up on drop.
struct Podman {
    dir: tempfile::TempDir,
    sandbox: Option<MountSandbox>,
    podman: PathBuf,
    runtime: PathBuf,
    cgroup_parent: String,
    proxcage_config: PathBuf,
    /// Environment the runtime needs besides its config (the pct stand-in's root).
    runtime_env: Vec<(String, PathBuf)>,
    /// The CNI network of this podman, when it has one (else `netns = "none"`).
    network: Option<CniNetwork>,
}

impl Podman {
    /// podman with the busybox image loaded, running containers with `runtime`.
    fn new(runtime: &Path) -> Self {
        Podman::new_with(runtime, support::HOST_CONFIG, Vec::new(), false)
    }

    /// podman running proxcage routed to the pct backend on `standin`.
    fn new_pct(standin: &PctStandin) -> Self {
        let env = vec![("PCT_STANDIN_ROOT".to_string(), standin.root.clone())];
        Podman::new_with(
            &support::proxcage_bin(),
            &standin.proxcage_config(),
            env,
            false,
        )
    }

    /// As [`Podman::new`] or [`Podman::new_pct`], with a CNI network of the test's own as
    /// podman's default network.
    fn networked(runtime: &Path, standin: Option<&PctStandin>) -> Self {
        match standin {
            Some(standin) => Podman::new_with(
                &support::proxcage_bin(),
                &standin.proxcage_config(),
                vec![("PCT_STANDIN_ROOT".to_string(), standin.root.clone())],
                true,
            ),
            None => Podman::new_with(runtime, support::HOST_CONFIG, Vec::new(), true),
        }
    }

    /// As [`Podman::new`], with proxcage's config file text and the environment the
    /// runtime needs.
    fn new_with(
        runtime: &Path,
        proxcage_config_text: &str,
        runtime_env: Vec<(String, PathBuf)>,
        networked: bool,
    ) -> Self {
        support::require_root();
        let podman = support::require_tool("podman", "podman");
        support::require_tool("conmon", "conmon");
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let cgroup_parent = format!(
            "/proxcage-e2e-podman-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::SeqCst)
        );

        let dir = tempfile::Builder::new()
            .prefix("proxcage-e2e-podman-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let network = networked.then(|| CniNetwork::new(&d.join("cni")));
        let network_conf = match &network {
            Some(net) => format!(
                "[network]\nnetwork_backend = \"cni\"\nnetwork_config_dir = \"{}\"\ndefault_network = \"{}\"\n",
                net.dir.display(),
                net.name
            ),
            None => String::new(),
        };
        let netns = if networked { "bridge" } else { "none" };
        let proxcage_config = d.join("proxcage.toml");
        // Without CAP_SYS_RESOURCE podman's default nofile limit (1048576) cannot be set, so
        // runc fails with "error setting rlimit type 7": ask for limits the host allows.
        // `runtime_supports_json` names proxcage so it is called exactly as runc is, with
        // `--log-format=json --log <file>`.
        fs::write(
            d.join("containers.conf"),
            format!(
                r#"[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "{netns}"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d}/events.log"
tmp_dir = "{d}/libpod-tmp"
lock_type = "file"
runtime_supports_json = ["crun", "runc", "proxcage"]

{network_conf}"#,
                d = d.display()
            ),
        )
        .unwrap();
        fs::write(
            d.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{d}/storage\"\nrunroot = \"{d}/storage-run\"\n",
                d = d.display()
            ),
        )
        .unwrap();
        // podman runs the runtime's start, kill and delete with an environment of its own
        // (PATH and XDG_RUNTIME_DIR): proxcage finds this test's config at its default
        // path, /etc/proxcage/config.toml, in the sandbox's /etc, and the stand-in its
        // root through wrappers that set PCT_STANDIN_ROOT.
        let config_text = wrap_standin(d, proxcage_config_text, &runtime_env);
        fs::write(&proxcage_config, &config_text).unwrap();
        let sandbox = MountSandbox::with_etc(
            &d.join("sandbox"),
            &[("proxcage/config.toml", config_text.as_str())],
        );
        let pm = Podman {
            dir,
            sandbox: Some(sandbox),
            podman,
            runtime: runtime.to_path_buf(),
            cgroup_parent,
            proxcage_config,
            runtime_env,
            network,
        };
        let image = busybox_image();
        run(
            pm.podman()
                .args(["load", "--quiet", "--input"])
                .arg(&image.archive),
            COMMAND_TIMEOUT,
        )
        .ok();
        pm
    }

    /// Whether the runtime is proxcage on the pct stand-in.
    fn on_pct(&self) -> bool {
        self.runtime_env
            .iter()
            .any(|(k, _)| k == "PCT_STANDIN_ROOT")
    }

    /// `podman --runtime <runtime>` in the sandbox, with this test's configuration.
    fn podman(&self) -> Command {
        let d = self.dir.path();
        let mut cmd = self.sandbox.as_ref().unwrap().command(&self.podman);
        cmd.env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("PROXCAGE_CONFIG", &self.proxcage_config)
            .envs(self.runtime_env.iter().map(|(k, v)| (k, v)))
            .arg("--runtime")
            .arg(&self.runtime);
        cmd
    }

    /// `podman run [flags] IMAGE ARGS...`, never pulling, in this test's cgroup parent.
    fn podman_run(&self, flags: &[&str], args: &[&str]) -> Command {
        let mut cmd = self.podman();
        cmd.args([
            "run",
            "--pull=never",
            "--cgroup-parent",
            &self.cgroup_parent,
        ])
        .args(flags)
        .arg(IMAGE_REF)
        .args(args);
        cmd
    }

    /// Fails unless podman and the runtime have no container left. The runtime's `delete
    /// --force` comes from podman's cleanup process, which conmon starts when the
    /// container exits and which may still be running when podman returns: the runtime
    /// gets a moment.
    #[track_caller]
    fn assert_nothing_left(&self) {
        let ran = run(
            self.podman().args(["ps", "--all", "--quiet"]),
            COMMAND_TIMEOUT,
        )
        .ok();
        assert_eq!(ran.stdout, "", "podman still has containers");
        let list = || {
            let ran = run(
                self.sandbox
                    .as_ref()
                    .unwrap()
                    .command(&self.runtime)
                    .env("PROXCAGE_CONFIG", &self.proxcage_config)
                    .envs(self.runtime_env.iter().map(|(k, v)| (k, v)))
                    .args(["list", "-q"]),
                COMMAND_TIMEOUT,
            )
            .ok();
            ran.stdout
        };
        let empty = wait_until(Duration::from_secs(10), || list().is_empty());
        assert!(empty, "the runtime still lists containers:\n{}", list());
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Whatever a failed test left.
        let _ = run_captured(
            self.podman()
                .args(["rm", "--force", "--all", "--time", "0"]),
            COMMAND_TIMEOUT,
        );
        let problems = leftovers(self.sandbox.take(), &self.cgroup_parent, self.dir.path());
        report_leftovers(&problems, "");
    }
}

/// Reads what a TCP server at `address` says, retrying until it answers (60 s).
fn fetch(address: &str) -> String {
    use std::io::Read;
    let address: std::net::SocketAddr = address.parse().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(1)).and_then(
            |mut s| {
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                let mut text = String::new();
                s.read_to_string(&mut text).map(|_| text)
            },
        );
        match got {
            Ok(text) if !text.is_empty() => return text,
            _ if std::time::Instant::now() > deadline => panic!("nothing answered at {address}"),
            _ => thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// `config` with the stand-in's pct and pvesh replaced by wrappers (in `dir/bin`) that
/// set `PCT_STANDIN_ROOT` from `env`; `config` as it is without a stand-in.
fn wrap_standin(dir: &Path, config: &str, env: &[(String, PathBuf)]) -> String {
    let Some((_, root)) = env.iter().find(|(k, _)| k == "PCT_STANDIN_ROOT") else {
        return config.to_string();
    };
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let standin = support::pct::standin_bin();
    let mut config = config.to_string();
    for tool in ["pct", "pvesh"] {
        let wrapper = bin.join(tool);
        support::install_script(
            &wrapper,
            &format!(
                "#!/bin/bash\nexport PCT_STANDIN_ROOT={}\nexec -a {tool} {} \"$@\"\n",
                root.display(),
                standin.display()
            ),
        );
        let line = |path: &Path| format!("{tool} = \"{}\"", path.display());
        let configured = config
            .lines()
            .find(|l| l.starts_with(&format!("{tool} = ")))
            .map(str::to_string);
        if let Some(configured) = configured {
            config = config.replace(&configured, &line(&wrapper));
        }
    }
    config
}

fn runc() -> PathBuf {
    support::require_tool("runc", "runc")
}

// ---- scenarios ------------------------------------------------------------------------

/// `podman run --rm`: the container's stdout and stderr reach podman's, its exit code is
/// podman's.
fn run_rm(pm: Podman) {
    let ran = run(
        &mut pm.podman_run(&["--rm"], &["sh", "-c", "echo out; echo err >&2; exit 3"]),
        COMMAND_TIMEOUT,
    );
    assert_eq!(ran.code, 3, "exit code\n{ran}");
    assert_eq!(ran.stdout, "out\n", "stdout\n{ran}");
    assert!(ran.stderr.lines().any(|l| l == "err"), "stderr\n{ran}");
    pm.assert_nothing_left();
}

/// `podman run -d`, two execs (output, exit code), `podman stop` (SIGTERM reaches the
/// container: it exits 0 from its trap, not 137 from the SIGKILL podman sends after the
/// timeout), `podman rm`: nothing is left.
fn detached_exec_stop_rm(pm: Podman) {
    let name = "detached";
    let script = "trap 'exit 0' TERM; while true; do sleep 0.1; done";
    let ran = run(
        &mut pm.podman_run(&["-d", "--name", name], &["sh", "-c", script]),
        COMMAND_TIMEOUT,
    );
    assert_eq!(ran.code, 0, "podman run -d\n{ran}");
    let id = ran.stdout.trim();
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "podman run -d printed no id\n{ran}"
    );

    let ran = run(
        pm.podman().args(["exec", name, "echo", "hi"]),
        COMMAND_TIMEOUT,
    );
    assert_eq!((ran.code, ran.stdout.as_str()), (0, "hi\n"), "exec\n{ran}");

    let ran = run(
        pm.podman().args(["exec", name, "sh", "-c", "exit 5"]),
        COMMAND_TIMEOUT,
    );
    assert_eq!(ran.code, 5, "exec exit code\n{ran}");

    let ran = run(
        pm.podman().args(["stop", "--time", "5", name]),
        COMMAND_TIMEOUT,
    );
    assert_eq!(ran.code, 0, "podman stop\n{ran}");
    let ran = run(
        pm.podman().args([
            "inspect",
            "--format",
            "{{.State.Status}} {{.State.ExitCode}}",
            name,
        ]),
        COMMAND_TIMEOUT,
    )
    .ok();
    assert_eq!(
        ran.stdout.trim(),
        "exited 0",
        "state after podman stop\n{ran}"
    );
    run(pm.podman().args(["rm", name]), COMMAND_TIMEOUT).ok();
    pm.assert_nothing_left();
}

/// `podman update` of a running container: podman hands the runtime the container's new
/// resources (`update --resources`), and its cgroup has them.
fn update(pm: Podman) {
    let name = "updated";
    let ran = run(
        &mut pm.podman_run(&["-d", "--name", name], &["sleep", "1000"]),
        COMMAND_TIMEOUT,
    );
    assert_eq!(ran.code, 0, "podman run -d\n{ran}");
    let ran = run(
        pm.podman().args([
            "update",
            "--memory",
            "256m",
            "--memory-swap",
            "512m",
            "--cpu-quota",
            "50000",
            "--cpu-period",
            "100000",
            name,
        ]),
        COMMAND_TIMEOUT,
    );
    assert_eq!(ran.code, 0, "podman update\n{ran}");
    let ran = run(
        pm.podman()
            .args(["inspect", "--format", "{{.State.Pid}}", name]),
        COMMAND_TIMEOUT,
    )
    .ok();
    let pid: i64 = ran.stdout.trim().parse().unwrap();
    support::assert_cgroup(
        pid,
        &[
            ("memory", "memory.limit_in_bytes", "268435456"),
            ("memory", "memory.memsw.limit_in_bytes", "536870912"),
            ("cpu", "cpu.cfs_quota_us", "50000"),
        ],
    );
    run(
        pm.podman().args(["rm", "--force", "--time", "0", name]),
        COMMAND_TIMEOUT,
    )
    .ok();
    pm.assert_nothing_left();
}

/// podman's default network (a CNI bridge): the container has the IP podman reports, a
/// `-p` port is reached from the host on 127.0.0.1 and the container's IP is reached
/// directly; after `rm` (and after a `--rm` run) CNI DEL leaves no rule, veth or netns.
fn default_network_and_published_port(pm: Podman) {
    let net = pm.network.as_ref().unwrap();
    let ran = run(
        &mut pm.podman_run(
            &["--rm"],
            &["ip", "-o", "-4", "addr", "show", "dev", "eth0"],
        ),
        COMMAND_TIMEOUT,
    );
    assert_eq!(ran.code, 0, "podman run --rm ip addr\n{ran}");
    assert!(
        ran.stdout.contains(&format!("inet {}", net.prefix)),
        "eth0 has an address of the network\n{ran}"
    );
    let port = format!("{}:80", net.host_port);
    let serve = "while true; do echo hello | nc -l -p 80; done";
    let ran = run(
        &mut pm.podman_run(&["-d", "--name", "web", "-p", &port], &["sh", "-c", serve]),
        COMMAND_TIMEOUT,
    );
    assert_eq!(ran.code, 0, "podman run -d -p\n{ran}");
    let ran = run(
        pm.podman().args([
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            "web",
        ]),
        COMMAND_TIMEOUT,
    )
    .ok();
    let ip = ran.stdout.trim().to_string();
    assert!(ip.starts_with(&net.prefix), "podman reports {ip:?}");
    let ran = run(
        pm.podman().args([
            "exec", "web", "ip", "-o", "-4", "addr", "show", "dev", "eth0",
        ]),
        COMMAND_TIMEOUT,
    )
    .ok();
    assert!(
        ran.stdout.contains(&format!("inet {ip}/24")),
        "the container has the IP podman reports ({ip})\n{ran}"
    );

    if pm.on_pct() {
        // Inside a CT, proxcage-init is PID 1 and the process its child.
        let ran = run(
            pm.podman().args(["exec", "web", "cat", "/proc/1/cmdline"]),
            COMMAND_TIMEOUT,
        )
        .ok();
        assert!(
            ran.stdout.starts_with("/.proxcage/init"),
            "the container runs in a CT\n{ran}"
        );
    }
    assert_eq!(fetch(&format!("127.0.0.1:{}", net.host_port)), "hello\n");
    assert_eq!(fetch(&format!("{ip}:80")), "hello\n");
    run(
        pm.podman().args(["rm", "--force", "--time", "0", "web"]),
        COMMAND_TIMEOUT,
    )
    .ok();
    pm.assert_nothing_left();
    net.assert_clean(pm.sandbox.as_ref().unwrap());
}

/// `--network host`: the container is in the host's network namespace.
fn host_network(pm: Podman) {
    let ran = run(
        &mut pm.podman_run(
            &["--rm", "--network", "host"],
            &["readlink", "/proc/self/ns/net"],
        ),
        COMMAND_TIMEOUT,
    );
    assert_eq!(ran.code, 0, "podman run --network host\n{ran}");
    let host = fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(ran.stdout.trim(), host.to_str().unwrap(), "{ran}");
    if pm.on_pct() {
        let ran = run(
            &mut pm.podman_run(&["--rm", "--network", "host"], &["cat", "/proc/1/cmdline"]),
            COMMAND_TIMEOUT,
        );
        assert!(
            ran.stdout.starts_with("/.proxcage/init"),
            "the container runs in a CT\n{ran}"
        );
    }
    pm.assert_nothing_left();
}

/// `podman pod create` with two members: one serves on the pod's localhost, the other
/// reaches it there (both under podman's default seccomp profile); then the pod goes
/// with `pod rm --force`.
fn pod_members_share_localhost(pm: Podman) {
    let ran = run(
        pm.podman().args([
            "pod",
            "create",
            "--name",
            "pod1",
            "--infra-image",
            IMAGE_REF,
            "--infra-command",
            "sleep 100000",
        ]),
        COMMAND_TIMEOUT,
    );
    assert_eq!(ran.code, 0, "podman pod create\n{ran}");
    let member = ["--pod", "pod1"];
    let serve = "while true; do echo hello | nc -l -p 8080; done";
    let flags: Vec<&str> = ["-d", "--name", "server"]
        .iter()
        .chain(&member)
        .copied()
        .collect();
    let ran = run(
        &mut pm.podman_run(&flags, &["sh", "-c", serve]),
        COMMAND_TIMEOUT,
    );
    assert_eq!(ran.code, 0, "podman run -d --pod\n{ran}");
    let flags: Vec<&str> = ["--rm"].iter().chain(&member).copied().collect();
    let fetch =
        "for i in $(seq 50); do nc 127.0.0.1 8080 </dev/null && exit 0; sleep 0.2; done; exit 1";
    let ran = run(
        &mut pm.podman_run(&flags, &["sh", "-c", fetch]),
        COMMAND_TIMEOUT,
    );
    assert_eq!(
        ran.code, 0,
        "the second member reaches the first on localhost\n{ran}"
    );
    assert_eq!(ran.stdout, "hello\n", "{ran}");
    if pm.on_pct() {
        let ran = run(
            pm.podman()
                .args(["exec", "server", "cat", "/proc/1/cmdline"]),
            COMMAND_TIMEOUT,
        )
        .ok();
        assert!(
            ran.stdout.starts_with("sh"),
            "a member is PID 1 of its own pid namespace in the pod's CT, not a CT's init\n{ran}"
        );
    }
    run(
        pm.podman()
            .args(["pod", "rm", "--force", "--time", "0", "pod1"]),
        COMMAND_TIMEOUT,
    )
    .ok();
    pm.assert_nothing_left();
    pm.network
        .as_ref()
        .unwrap()
        .assert_clean(pm.sandbox.as_ref().unwrap());
}

// ---- tests ----------------------------------------------------------------------------

#[test]
fn podman_update_with_runc() {
    update(Podman::new(&runc()));
}

#[test]
fn podman_update_with_proxcage() {
    update(Podman::new(&support::proxcage_bin()));
}

#[test]
fn podman_run_rm_with_runc() {
    run_rm(Podman::new(&runc()));
}

#[test]
fn podman_run_rm_with_proxcage() {
    run_rm(Podman::new(&support::proxcage_bin()));
}

/// A Proxmox container (through the pct stand-in: test code, not Proxmox) under podman:
/// conmon waits on proxcage's monitor, which stands in for the CT's init.
#[test]
fn podman_run_rm_with_pct() {
    let standin = PctStandin::new();
    run_rm(Podman::new_pct(&standin));
    standin.assert_no_ct();
}

#[test]
fn podman_detached_exec_stop_rm_with_runc() {
    detached_exec_stop_rm(Podman::new(&runc()));
}

#[test]
fn podman_detached_exec_stop_rm_with_proxcage() {
    detached_exec_stop_rm(Podman::new(&support::proxcage_bin()));
}

#[test]
fn podman_detached_exec_stop_rm_with_pct() {
    let standin = PctStandin::new();
    detached_exec_stop_rm(Podman::new_pct(&standin));
    standin.assert_no_ct();
}

#[test]
fn podman_default_network_and_published_port_with_runc() {
    default_network_and_published_port(Podman::networked(&runc(), None));
}

/// A container on podman's default network becomes a CT holding the CNI interfaces.
#[test]
fn podman_default_network_and_published_port_with_pct() {
    let standin = PctStandin::new();
    default_network_and_published_port(Podman::networked(&runc(), Some(&standin)));
    standin.assert_no_ct();
}

#[test]
fn podman_host_network_with_runc() {
    host_network(Podman::networked(&runc(), None));
}

#[test]
fn podman_host_network_with_pct() {
    let standin = PctStandin::new();
    host_network(Podman::networked(&runc(), Some(&standin)));
    standin.assert_no_ct();
}

#[test]
fn podman_pod_members_share_localhost_with_runc() {
    pod_members_share_localhost(Podman::networked(&runc(), None));
}

/// A podman pod on pct is one CT: the infra container's, with the pod's network; the
/// members run nested in it.
#[test]
fn podman_pod_members_share_localhost_with_pct() {
    let standin = PctStandin::new();
    pod_members_share_localhost(Podman::networked(&runc(), Some(&standin)));
    standin.assert_no_ct();
}
