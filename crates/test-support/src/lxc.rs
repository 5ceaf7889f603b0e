//! Real LXC runs of a translated bundle: a busybox bundle, its config from
//! `proxcage_lxc_config::from_oci`, `lxc-start -F` / `lxc-execute` with a private lxcpath,
//! and a teardown that leaves no container, mount, cgroup or directory behind.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use proxcage_lxc_config::{from_oci, ResolvedPaths, Translation};
use proxcage_oci::Bundle;

use crate::{busybox_rootfs, require_root, require_tool, unique};

/// A busybox bundle in a temp dir of its own, with runc's default spec, `args` as the
/// process, no terminal and a cgroup path of its own.
#[derive(Debug)]
pub struct LxcBundle {
    pub dir: tempfile::TempDir,
    pub bundle: PathBuf,
    pub name: String,
    cgroup: String,
}

impl LxcBundle {
    pub fn new(args: &[&str]) -> LxcBundle {
        require_root();
        require_tool("lxc-start", "lxc");
        let dir = tempfile::Builder::new()
            .prefix("proxcage-lxc-")
            .tempdir()
            .unwrap();
        let bundle = dir.path().join("bundle");
        fs::create_dir(&bundle).unwrap();
        busybox_rootfs(&bundle.join("rootfs"));
        proxcage_oci::write_default_spec(&bundle, false).unwrap();
        let n = unique();
        let name = format!("pcg-{}-{n}", std::process::id());
        let cgroup = format!("proxcage-lxc-test-{}-{n}", std::process::id());
        let b = LxcBundle {
            dir,
            bundle,
            name,
            cgroup,
        };
        let cg = format!("/{}", b.cgroup);
        b.edit(|spec| {
            spec["process"]["args"] = serde_json::json!(args);
            spec["process"]["terminal"] = serde_json::json!(false);
            spec["linux"]["cgroupsPath"] = serde_json::json!(cg);
        });
        b
    }

    pub fn rootfs(&self) -> PathBuf {
        self.bundle.join("rootfs")
    }

    /// Changes config.json.
    pub fn edit(&self, change: impl FnOnce(&mut serde_json::Value)) {
        crate::edit_config(&self.bundle, change);
    }

    /// The translation of the bundle as it is now (files under `<dir>/files`).
    pub fn translate(&self) -> Translation {
        let bundle = Bundle::load(&self.bundle).unwrap();
        from_oci(
            bundle.spec(),
            &ResolvedPaths::from_bundle(&bundle, self.dir.path().join("files")),
        )
        .unwrap_or_else(|e| panic!("translation failed: {e}"))
    }

    fn lxcpath(&self) -> PathBuf {
        self.dir.path().join("lxc")
    }

    /// Translates, prepares, and runs the container in the foreground with `lxc-start -F`
    /// (stdio inherited through `lxc.console.path = none`); returns its output. Fails the
    /// test with LXC's log when lxc-start itself fails.
    pub fn start(&self) -> Output {
        let translation = self.translate();
        self.start_with(&translation)
    }

    pub fn start_with(&self, translation: &Translation) -> Output {
        let config = self.write_config(translation);
        let log = self.dir.path().join("lxc.log");
        let mut cmd = Command::new("lxc-start");
        cmd.args(["-n", &self.name, "-P"])
            .arg(self.lxcpath())
            .arg("-f")
            .arg(&config)
            .args(["-F", "-l", "DEBUG", "-o"])
            .arg(&log);
        let out = run(&mut cmd, &self.dir.path().join("out"));
        assert!(
            out.status.success(),
            "lxc-start failed ({}):\nstderr: {}\nconfig:\n{}\nlog:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            fs::read_to_string(&config).unwrap_or_default(),
            log_errors(&log)
        );
        out
    }

    /// Like [`LxcBundle::start`], and the container's stdout as text; fails the test with
    /// the log when the output is empty (the payload did not run).
    pub fn stdout(&self) -> String {
        let out = self.start();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            !text.is_empty(),
            "the container printed nothing; stderr: {}\nlog:\n{}",
            String::from_utf8_lossy(&out.stderr),
            log_errors(&self.dir.path().join("lxc.log"))
        );
        text
    }

    /// `lxc-execute -- argv` with the translated config: argv is passed by LXC itself.
    pub fn execute(&self, argv: &[&str]) -> Output {
        let config = self.write_config(&self.translate());
        let mut cmd = Command::new("lxc-execute");
        cmd.args(["-n", &self.name, "-P"])
            .arg(self.lxcpath())
            .arg("-f")
            .arg(&config)
            .args(["-l", "DEBUG", "-o"])
            .arg(self.dir.path().join("lxc.log"))
            .arg("--")
            .args(argv);
        run(&mut cmd, &self.dir.path().join("out"))
    }

    /// `lxc-info -c key` on the translated config: LXC parses it without starting.
    pub fn lxc_info(&self, translation: &Translation, key: &str) -> Output {
        let config = self.write_config(translation);
        let mut cmd = Command::new("lxc-info");
        cmd.args(["-n", &self.name, "-P"])
            .arg(self.lxcpath())
            .arg("--rcfile")
            .arg(&config)
            .args(["-c", key]);
        run(&mut cmd, &self.dir.path().join("out"))
    }

    fn write_config(&self, translation: &Translation) -> PathBuf {
        translation.prepare().unwrap();
        fs::create_dir_all(self.lxcpath()).unwrap();
        let config = self.dir.path().join("config");
        fs::write(&config, translation.config().render()).unwrap();
        config
    }
}

impl Drop for LxcBundle {
    fn drop(&mut self) {
        // A container a failed test left running: kill it.
        let running = Command::new("lxc-info")
            .args(["-n", &self.name, "-P"])
            .arg(self.lxcpath())
            .arg("-s")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("RUNNING"))
            .unwrap_or(false);
        if running {
            let _ = Command::new("lxc-stop")
                .args(["-n", &self.name, "-P"])
                .arg(self.lxcpath())
                .args(["-k", "-t", "10"])
                .output();
        }
        remove_cgroups(&self.name, &self.cgroup);
    }
}

/// Removes the empty cgroups LXC leaves, in every hierarchy: the `lxc.cgroup.dir` the spec
/// gave (LXC puts `lxc.payload.NAME` and `lxc.monitor.NAME` under it), and the default
/// names should a run have had none. `lxc.pivot` is shared by every LXC start on the host
/// and left alone, as another test may be using it; with `lxc.cgroup.dir` set LXC does
/// not create it.
pub fn remove_cgroups(name: &str, cgroup_dir: &str) {
    let Ok(hierarchies) = fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let names = [
        cgroup_dir.to_string(),
        format!("lxc.payload.{name}"),
        format!("lxc.monitor.{name}"),
    ];
    for hierarchy in hierarchies.flatten() {
        for n in &names {
            remove_tree(&hierarchy.path().join(n));
        }
    }
}

/// rmdir a cgroup and its children, deepest first (cgroups cannot be removed recursively).
fn remove_tree(dir: &Path) {
    let Ok(children) = fs::read_dir(dir) else {
        return;
    };
    for child in children.flatten() {
        if child.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_tree(&child.path());
        }
    }
    let _ = fs::remove_dir(dir);
}

/// The ERROR lines of an LXC log, or all of it when there are none.
pub fn log_errors(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let errors: Vec<_> = text
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .collect();
    if errors.is_empty() {
        text
    } else {
        errors.join("\n")
    }
}

fn run(cmd: &mut Command, base: &Path) -> Output {
    let start = Instant::now();
    let out = crate::run_with_files(cmd, base);
    assert!(start.elapsed() < Duration::from_secs(60));
    out
}
