//! The pct stand-in fixture: a private `PCT_STANDIN_ROOT`, a bin directory with `pct` and
//! `pvesh` symlinks to the stand-in (test code, not Proxmox), busybox templates, and a Drop
//! that stops and destroys every container and removes the root's cgroups.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::{require_root, require_tool, run_with_files};

/// The stand-in binary: `$PCT_STANDIN_BIN`, or the one cargo built next to the test
/// executable (built here with `cargo build -p pct-standin` when missing).
pub fn standin_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("PCT_STANDIN_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("pct-standin");
    if !bin.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "pct-standin"])
            .status()
            .expect("run cargo build -p pct-standin");
        assert!(status.success(), "cargo build -p pct-standin failed");
    }
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p pct-standin`",
        bin.display()
    );
    bin
}

/// One stand-in node with its own state; everything in it goes when dropped.
#[derive(Debug)]
pub struct PctStandin {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub bin_dir: PathBuf,
    standin: PathBuf,
}

impl PctStandin {
    /// Needs root, LXC, tar and zstd; fails naming what to install.
    // Not a Default: it sets up a root and checks the host, and fails where that cannot be.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        require_root();
        require_tool("lxc-start", "lxc");
        require_tool("lxc-usernsexec", "lxc");
        require_tool("tar", "tar");
        require_tool("zstd", "zstd");
        let dir = tempfile::Builder::new()
            .prefix("pct-standin-test-")
            .tempdir()
            .unwrap();
        // An unprivileged container's root (uid 100000) must reach its rootfs.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let root = dir.path().join("root");
        let bin_dir = dir.path().join("bin");
        fs::create_dir_all(&bin_dir).unwrap();
        let standin = standin_bin();
        for name in ["pct", "pvesh"] {
            symlink(&standin, bin_dir.join(name)).unwrap();
        }
        let fixture = PctStandin {
            dir,
            root,
            bin_dir,
            standin,
        };
        // Lays out the tree (storage.cfg included) before tests race on it.
        let out = fixture.pct(&["list"]);
        assert!(out.status.success(), "pct list: {}", stderr(&out));
        fixture
    }

    /// A proxcage config file's text that routes every container to the pct backend on
    /// this stand-in; the backend's files for each CT go under `<dir>/files`.
    pub fn proxcage_config(&self) -> String {
        let root = self.root.display();
        format!(
            r#"
default_backend = "pct"

[backends.pct]
pct = "{bin}/pct"
pvesh = "{bin}/pvesh"
lxc_path = "{root}/var/lib/lxc"
pve_dir = "{root}/etc/pve"
lock_dir = "{root}/run/lock/lxc"
template_dir = "{root}/var/lib/vz/template/cache"
files_dir = "{files}"
"#,
            bin = self.bin_dir.display(),
            files = self.dir.path().join("files").display(),
        )
    }

    /// Fails unless the stand-in has no CT left.
    #[track_caller]
    pub fn assert_no_ct(&self) {
        assert_eq!(self.pct_ok(&["list"]), "", "CTs left on the pct stand-in");
    }

    /// Fails unless nothing of the pct backend is left for `p`: no container in its list,
    /// no CT, no template, no backend record (its lock files aside), no container files.
    #[track_caller]
    pub fn assert_nothing_left(&self, p: &crate::Proxcage) {
        assert_eq!(p.ok(&["list", "-q"]), "");
        self.assert_no_ct();
        let templates = self.templates();
        assert!(templates.is_empty(), "templates left: {templates:?}");
        // The templates' references and locks go with the templates.
        if let Ok(entries) = fs::read_dir(self.template_dir().join(".proxcage-refs")) {
            let left: Vec<_> = entries.map(|e| e.unwrap().file_name()).collect();
            assert!(
                left.is_empty(),
                "template references or locks left: {left:?}"
            );
        }
        if let Ok(entries) = fs::read_dir(p.root.join("backends/pct")) {
            let left: Vec<_> = entries
                .map(|e| e.unwrap().file_name())
                .filter(|n| n != "attach.lock" && n != "root-token")
                .collect();
            assert!(left.is_empty(), "backend records left: {left:?}");
        }
        // Each root has a directory of its own there (named after its token): empty.
        let files = self.dir.path().join("files");
        if let Ok(entries) = fs::read_dir(&files) {
            let left: Vec<_> = entries
                .map(|e| e.unwrap().path())
                .filter(|dir| !fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none()))
                .collect();
            assert!(
                left.is_empty(),
                "files left in {}: {left:?}",
                files.display()
            );
        }
    }

    /// `pct` or `pvesh` (or `pct-standin`) with this root.
    pub fn cmd(&self, tool: &str) -> Command {
        let program = if tool == "pct-standin" {
            self.standin.clone()
        } else {
            self.bin_dir.join(tool)
        };
        let mut cmd = Command::new(program);
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PCT_STANDIN_ROOT", &self.root)
            .env("PATH", format!("{}:{path}", self.bin_dir.display()));
        cmd
    }

    pub fn run(&self, tool: &str, args: &[&str]) -> Output {
        run_with_files(self.cmd(tool).args(args), &self.dir.path().join("out"))
    }

    pub fn pct(&self, args: &[&str]) -> Output {
        self.run("pct", args)
    }

    pub fn pvesh(&self, args: &[&str]) -> Output {
        self.run("pvesh", args)
    }

    /// Runs `pct <args>`, fails the test unless it exits 0, returns stdout.
    pub fn pct_ok(&self, args: &[&str]) -> String {
        ok("pct", args, self.pct(args))
    }

    pub fn pvesh_ok(&self, args: &[&str]) -> String {
        ok("pvesh", args, self.pvesh(args))
    }

    /// The LXC path to pass as `-P` to lxc-info / lxc-attach.
    pub fn lxcpath(&self) -> PathBuf {
        self.root.join("var/lib/lxc")
    }

    pub fn conf_path(&self, vmid: u32) -> PathBuf {
        self.root.join(format!("etc/pve/nodes/pve/lxc/{vmid}.conf"))
    }

    pub fn template_dir(&self) -> PathBuf {
        self.root.join("var/lib/vz/template/cache")
    }

    /// The files in the template directory, sorted; proxcage's references and locks
    /// (`.proxcage-refs`) aside.
    pub fn templates(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.template_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != ".proxcage-refs")
            .collect();
        names.sort();
        names
    }

    /// Packs a busybox rootfs as `local:vztmpl/<file>` (compression from the suffix), with
    /// `/start.sh` printing `hello from <hostname>` and sleeping; `tweak` may add files.
    pub fn busybox_template(&self, file: &str, tweak: impl FnOnce(&Path)) -> String {
        let rootfs = self.dir.path().join(format!("rootfs-{file}"));
        crate::busybox_rootfs(&rootfs);
        fs::create_dir_all(rootfs.join("sbin")).unwrap();
        fs::write(
            rootfs.join("start.sh"),
            "echo hello from $(hostname)\nexec sleep 1000\n",
        )
        .unwrap();
        tweak(&rootfs);
        let status = Command::new("tar")
            .arg("--numeric-owner")
            .arg("--xattrs")
            .arg("-caf")
            .arg(self.template_dir().join(file))
            .arg("-C")
            .arg(&rootfs)
            .arg(".")
            .status()
            .expect("tar");
        assert!(status.success(), "packing {file} failed");
        fs::remove_dir_all(&rootfs).unwrap();
        format!("local:vztmpl/{file}")
    }

    /// The init's host PID, from `lxc-info -n <vmid> -P <lxcpath> -p -H`.
    pub fn lxc_pid(&self, vmid: u32) -> Option<i64> {
        let out = Command::new("lxc-info")
            .args(["-n", &vmid.to_string(), "-P"])
            .arg(self.lxcpath())
            .args(["-p", "-H"])
            .output()
            .expect("lxc-info");
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }

    /// This root's cgroup directories that still exist, in any hierarchy.
    pub fn leftover_cgroups(&self) -> Vec<PathBuf> {
        let prefix = {
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            for b in self.root.as_os_str().as_encoded_bytes() {
                hash ^= u64::from(*b);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
            format!("pct-standin-{:012x}", hash & 0xffff_ffff_ffff)
        };
        let mut out = Vec::new();
        for h in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let dir = h.path().join(&prefix);
            if dir.exists() {
                out.push(dir);
            }
        }
        if Path::new("/sys/fs/cgroup").join(&prefix).exists() {
            out.push(Path::new("/sys/fs/cgroup").join(&prefix));
        }
        out
    }

    /// `pct-standin cleanup`: stop and destroy everything, remove cgroups.
    pub fn cleanup(&self) -> Output {
        self.run("pct-standin", &["cleanup"])
    }
}

impl Drop for PctStandin {
    fn drop(&mut self) {
        let _ = self.cleanup();
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(tool: &str, args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "{tool} {} failed ({}):\nstdout: {}\nstderr: {}",
        args.join(" "),
        out.status,
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// The pct backend's record of container `id` of `p`.
pub fn backend_record(p: &crate::Proxcage, id: &str) -> serde_json::Value {
    let path = p.root.join("backends/pct").join(format!("{id}.json"));
    serde_json::from_slice(&fs::read(&path).unwrap()).unwrap()
}

/// The VMID of container `id` of `p`, from the pct backend's record.
pub fn vmid_of(p: &crate::Proxcage, id: &str) -> u32 {
    backend_record(p, id)["vmid"].as_u64().unwrap() as u32
}

/// proxcage routed to the pct backend, configured for `standin`'s paths.
pub fn proxcage_for(standin: &PctStandin) -> crate::Proxcage {
    proxcage_with_config(standin, &standin.proxcage_config())
}

/// proxcage with the config file text `config`, which names `standin`'s paths (see
/// [`PctStandin::proxcage_config`]).
pub fn proxcage_with_config(standin: &PctStandin, config: &str) -> crate::Proxcage {
    let mut p = crate::Proxcage::new(config);
    p.env
        .push(("PCT_STANDIN_ROOT".into(), standin.root.clone()));
    // Unprivileged CTs (uid 100000) reach bind-mount sources in the bundles here.
    fs::set_permissions(p.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    p
}
