//! Shared helpers for the proxcage crates' tests: where the `proxcage` binary is, what the
//! host must have, busybox bundles, a private proxcage root and config per test, the pct
//! stand-in's setup, tree snapshots, and stand-in scripts for the tools backends drive.
//!
//! Tests that need root or a tool fail with a message naming what to install; they never
//! pass silently.

pub mod cni;
pub mod containerd;
#[cfg(feature = "cri")]
pub mod cri;
pub mod image;
pub mod lxc;
pub mod netns;
pub mod ocijail;
pub mod pct;
pub mod tree;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `proxcage` binary under test: `$PROXCAGE_BIN`, or the one cargo built next to the
/// test executable (`cargo test -p proxcage-cli` builds it for the CLI's tests).
pub fn proxcage_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("PROXCAGE_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("proxcage");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build -p proxcage-cli` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// Fails the test unless it runs as root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (it runs real containers); run the test suite as root, e.g. `sudo scripts/test.sh`"
    );
}

/// The path of `tool`, or a failure naming the Debian package to install.
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{tool} is not installed: apt-get install -y {package}"))
}

/// A busybox root filesystem: the static busybox binary and one symlink per applet.
/// Built once per test process and copied (hardlinked) into each bundle.
fn busybox_rootfs_template() -> &'static Path {
    TEMPLATE.get_or_init(|| {
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| {
                panic!("busybox is not installed: apt-get install -y busybox-static")
            });
        let dir = std::env::temp_dir().join(format!("proxcage-test-rootfs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for sub in ["bin", "proc", "sys", "dev", "tmp", "etc", "root", "run"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        fs::copy(&busybox, dir.join("bin/busybox")).unwrap();
        let list = Command::new(&busybox)
            .arg("--list")
            .output()
            .expect("busybox --list");
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" && !applet.is_empty() {
                let _ = symlink("busybox", dir.join("bin").join(applet));
            }
        }
        fs::write(
            dir.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
        )
        .unwrap();
        fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
        fs::set_permissions(
            dir.join("tmp"),
            std::os::unix::fs::PermissionsExt::from_mode(0o1777),
        )
        .unwrap();
        // SAFETY: registering a plain `extern "C" fn` that only touches a static.
        unsafe { libc::atexit(remove_rootfs_template) };
        dir
    })
}

static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_rootfs_template() {
    if let Some(dir) = TEMPLATE.get() {
        let _ = fs::remove_dir_all(dir);
    }
}

/// Copies the busybox rootfs to `dest` (cp -a keeps links and modes).
pub fn busybox_rootfs(dest: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(busybox_rootfs_template())
        .arg(dest)
        .status()
        .expect("cp");
    assert!(
        status.success(),
        "copying the busybox rootfs to {} failed",
        dest.display()
    );
}

/// Makes `<parent>/<name>` a bundle: busybox rootfs plus the config.json that
/// `proxcage spec` writes, with `args` as the process and no terminal.
pub fn busybox_bundle(parent: &Path, name: &str, args: &[&str]) -> PathBuf {
    let bundle = parent.join(name);
    fs::create_dir_all(&bundle).unwrap();
    busybox_rootfs(&bundle.join("rootfs"));
    let out = Command::new(proxcage_bin())
        .args(["spec", "--bundle"])
        .arg(&bundle)
        .output()
        .expect("run proxcage spec");
    assert!(
        out.status.success(),
        "proxcage spec failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Cgroups are host-wide and runc names them after the id by default: a path of its
    // own per bundle keeps parallel tests with the same ids apart.
    let cgroup = format!("/proxcage-test-{}-{}", std::process::id(), unique());
    edit_config(&bundle, |spec| {
        spec["process"]["args"] = serde_json::json!(args);
        spec["process"]["terminal"] = serde_json::json!(false);
        spec["linux"]["cgroupsPath"] = serde_json::json!(cgroup);
    });
    bundle
}

/// A filesystem of `fstype` mounted at `dir` (as root) until dropped.
#[derive(Debug)]
pub struct Mounted(PathBuf);

impl Mounted {
    pub fn new(fstype: &str, dir: &Path) -> Mounted {
        require_root();
        nix::mount::mount(
            Some(fstype),
            dir,
            Some(fstype),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap_or_else(|e| panic!("mount -t {fstype} {}: {e}", dir.display()));
        Mounted(dir.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A number no other call in this test process gets.
pub fn unique() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// The seed of a race test, printed so that `PROXCAGE_RACE_SEED=<n>` replays the run;
/// from the clock when that is unset.
pub fn race_seed(what: &str) -> u64 {
    let seed = std::env::var("PROXCAGE_RACE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("{what}: PROXCAGE_RACE_SEED={seed}");
    seed
}

/// One racing thread's choices: xorshift64*, enough randomness for an interleaving and
/// no dependency, the same sequence for the same seed and thread.
#[derive(Debug)]
pub struct RaceRng(u64);

impl RaceRng {
    pub fn new(seed: u64, thread: u64) -> Self {
        RaceRng(seed ^ (thread + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// What no command may print in a race of lifecycles on shared ids where no process is
/// killed: a damaged record, a lock wait that timed out, a live lock taken for a stale
/// one, a create that finished taken for an interrupted one.
pub fn assert_no_race_damage(args: &[&str], stderr: &str) {
    for never in [
        "unreadable",
        "timed out",
        "is stale",
        "its create was interrupted",
    ] {
        assert!(!stderr.contains(never), "{args:?}: {stderr}");
    }
}

/// True once `pid` has exited (a zombie not yet reaped counts as gone).
pub fn process_gone(pid: i64) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// Reads, changes and writes back a bundle's config.json.
pub fn edit_config(bundle: &Path, change: impl FnOnce(&mut serde_json::Value)) {
    let path = bundle.join("config.json");
    let mut spec: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    change(&mut spec);
    fs::write(&path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
}

/// The proxcage config for this machine: runc as is; crun in a private mount namespace
/// with a fresh cgroup2 mount and its cgroup manager disabled (the host has a hybrid
/// cgroup layout that crun refuses).
pub const HOST_CONFIG: &str = r#"
default_backend = "runc"

[backends.crun]
cgroup_manager = "disabled"
private_cgroup2 = true
"#;

/// [`HOST_CONFIG`] with `default_backend = backend`.
pub fn host_config_routing_to(backend: &str) -> String {
    HOST_CONFIG.replace(
        "default_backend = \"runc\"",
        &format!("default_backend = \"{backend}\""),
    )
}

/// A private proxcage root and config file, removed (with every container left in it)
/// when dropped.
#[derive(Debug)]
pub struct Proxcage {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub config: PathBuf,
    /// The binary driven: proxcage, or plain runc to prove a test right.
    pub bin: PathBuf,
    /// Extra environment for every invocation (e.g. the pct stand-in's root).
    pub env: Vec<(String, PathBuf)>,
}

impl Proxcage {
    pub fn new(config: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("proxcage-e2e-")
            .tempdir()
            .unwrap();
        let root = dir.path().join("root");
        let config_path = dir.path().join("config.toml");
        fs::write(&config_path, config).unwrap();
        Proxcage {
            dir,
            root,
            config: config_path,
            bin: proxcage_bin(),
            env: Vec::new(),
        }
    }

    /// proxcage with `default_backend = backend` and this host's backend settings.
    pub fn with_default(backend: &str) -> Self {
        Proxcage::new(&host_config_routing_to(backend))
    }

    /// Makes `binary` (a wrapper around the real one, say) the binary of `backend`.
    pub fn set_binary(&self, backend: &str, binary: &Path) {
        let text = fs::read_to_string(&self.config).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let table = format!("[backends.{backend}]");
        let line = format!("binary = \"{}\"", binary.display());
        match lines.iter().position(|l| *l == table) {
            Some(i) if lines.get(i + 1).is_some_and(|l| l.starts_with("binary = ")) => {
                lines[i + 1] = line;
            }
            Some(i) => lines.insert(i + 1, line),
            None => lines.extend([String::new(), table, line]),
        }
        fs::write(&self.config, lines.join("\n") + "\n").unwrap();
    }

    /// Plain runc with its own root, driven by the same test code: proves a test right.
    pub fn plain_runc() -> Self {
        let mut p = Proxcage::new("");
        p.bin = require_tool("runc", "runc");
        p
    }

    /// `proxcage --root <root>` with `PROXCAGE_CONFIG` set.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.env("PROXCAGE_CONFIG", &self.config)
            .arg("--root")
            .arg(&self.root);
        cmd
    }

    /// Runs `proxcage <args>` and returns its output. stdout and stderr go to files, not
    /// pipes: a container created with them keeps them open long after proxcage exits.
    /// A run that takes over 60 s is killed and fails the test.
    pub fn run(&self, args: &[&str]) -> Output {
        run_with_files(self.cmd().args(args), &self.dir.path().join("out"))
    }

    /// The backend `list` shows for container `id`.
    pub fn backend_of(&self, id: &str) -> String {
        let list: serde_json::Value =
            serde_json::from_str(&self.ok(&["list", "--format", "json"])).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("{id} not listed: {list}"))["backend"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Runs `proxcage <args>`, fails the test unless it exits 0, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "proxcage {} failed ({}):\nstdout: {}\nstderr: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The `status` field of `proxcage state ID`.
    pub fn status(&self, id: &str) -> String {
        let state: serde_json::Value = serde_json::from_str(&self.ok(&["state", id])).unwrap();
        state["status"].as_str().unwrap().to_string()
    }
}

impl Drop for Proxcage {
    fn drop(&mut self) {
        // Whatever a failed test left: force-delete every container proxcage knows.
        if let Ok(out) = self.cmd().args(["list", "-q"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = self.cmd().args(["delete", "--force", id]).output();
            }
        }
    }
}

/// Runs `cmd` with stdin closed and stdout/stderr in files next to `base`; kills it and
/// fails the test after 60 s.
pub fn run_with_files(cmd: &mut Command, base: &Path) -> Output {
    let n = unique();
    let out_path = base.with_extension(format!("{n}.stdout"));
    let err_path = base.with_extension(format!("{n}.stderr"));
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let output = Output {
        status,
        stdout: fs::read(&out_path).unwrap(),
        stderr: fs::read(&err_path).unwrap(),
    };
    let _ = fs::remove_file(&out_path);
    let _ = fs::remove_file(&err_path);
    output
}

/// Writes an executable script (a stand-in for a tool a backend drives) and waits until it
/// can run. Another test's thread may fork while the file is open for writing; until that
/// child execs, running the script fails with "Text file busy" (ETXTBSY). The script must
/// exit at once when `FAKE_PROBE` is set: the probe runs it that way until it can.
pub fn install_script(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Command::new(path).env("FAKE_PROBE", "1").status() {
            Err(e)
                if e.raw_os_error() == Some(libc::ETXTBSY)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => panic!("{}: {e}", path.display()),
            Ok(_) => return,
        }
    }
}

/// The file `file` of `pid`'s v1 `controller` cgroup (this host's layout); LXC's inner
/// `ns` cgroup counts as its parent, where limits are set.
pub fn cgroup_file(pid: i64, controller: &str, file: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, names, path) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        let path = path
            .strip_suffix("/ns")
            .unwrap_or(path)
            .trim_start_matches('/');
        if names.split(',').any(|n| n == controller) {
            let mount = std::fs::read_to_string("/proc/self/mounts").unwrap();
            let point = mount
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .find(|f| f[2] == "cgroup" && f[3].split(',').any(|o| o == controller))
                .map(|f| f[1].to_string())
                .unwrap();
            return PathBuf::from(point).join(path).join(file);
        }
    }
    panic!("{pid} has no {controller} cgroup: {text}");
}

/// The trimmed content of `pid`'s cgroup file (see [`cgroup_file`]).
pub fn cgroup_value(pid: i64, controller: &str, file: &str) -> String {
    let path = cgroup_file(pid, controller, file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

/// Asserts `pid`'s cgroup files hold the values: `(controller, file, value)`.
#[track_caller]
pub fn assert_cgroup(pid: i64, want: &[(&str, &str, &str)]) {
    for (controller, file, value) in want {
        assert_eq!(
            cgroup_value(pid, controller, file),
            *value,
            "{controller} {file} of {pid}"
        );
    }
}
