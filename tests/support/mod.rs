//! Shared helpers for the end-to-end tests: where the `proxcage` binary is, what the host
//! must have, busybox bundles, and a private proxcage root and config per test.
//!
//! Tests that need root or a tool fail with a message naming what to install; they never
//! pass silently.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `proxcage` binary under test: `$PROXCAGE_BIN`, or the one cargo built next to the
/// test executable (`cargo test --workspace` builds it).
pub fn proxcage_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("PROXCAGE_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("proxcage");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build -p proxcage-cli` (cargo test --workspace does)",
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
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("busybox is not installed: apt-get install -y busybox-static"));
        let dir = std::env::temp_dir().join(format!("proxcage-test-rootfs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for sub in ["bin", "proc", "sys", "dev", "tmp", "etc", "root", "run"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        fs::copy(&busybox, dir.join("bin/busybox")).unwrap();
        let list = Command::new(&busybox).arg("--list").output().expect("busybox --list");
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" && !applet.is_empty() {
                let _ = symlink("busybox", dir.join("bin").join(applet));
            }
        }
        fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n").unwrap();
        fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
        fs::set_permissions(dir.join("tmp"), std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
        dir
    })
}

/// Copies the busybox rootfs to `dest` (cp -a keeps links and modes).
pub fn busybox_rootfs(dest: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(busybox_rootfs_template())
        .arg(dest)
        .status()
        .expect("cp");
    assert!(status.success(), "copying the busybox rootfs to {} failed", dest.display());
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
    assert!(out.status.success(), "proxcage spec failed: {}", String::from_utf8_lossy(&out.stderr));
    edit_config(&bundle, |spec| {
        spec["process"]["args"] = serde_json::json!(args);
        spec["process"]["terminal"] = serde_json::json!(false);
    });
    bundle
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

/// A private proxcage root and config file, removed (with every container left in it)
/// when dropped.
pub struct Proxcage {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub config: PathBuf,
}

impl Proxcage {
    pub fn new(config: &str) -> Self {
        let dir = tempfile::Builder::new().prefix("proxcage-e2e-").tempdir().unwrap();
        let root = dir.path().join("root");
        let config_path = dir.path().join("config.toml");
        fs::write(&config_path, config).unwrap();
        Proxcage {
            dir,
            root,
            config: config_path,
        }
    }

    /// `proxcage --root <root>` with `PROXCAGE_CONFIG` set.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(proxcage_bin());
        cmd.env("PROXCAGE_CONFIG", &self.config).arg("--root").arg(&self.root);
        cmd
    }

    /// Runs `proxcage <args>` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run proxcage")
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
