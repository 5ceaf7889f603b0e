//! The stand-in's directory tree under `$PCT_STANDIN_ROOT`, laid out like a Proxmox node:
//!
//! ```text
//! etc/pve/nodes/<node>/lxc/<vmid>.conf   container configs (etc/pve/lxc -> nodes/<node>/lxc)
//! etc/pve/qemu-server/<vmid>.conf        plant these to play "QEMU VMs" (share the VMID space)
//! etc/pve/storage.cfg                    storages; written with `local` + `local-lvm` if absent
//! var/lib/vz/template/cache/<file>       templates of storage `local` (`local:vztmpl/<file>`)
//! images/<storage>/<volname>/            volumes of non-`dir` storages (rootfs, mpN), directories
//! run/lock/lxc/pve-config-<vmid>.lock    config locks (flock)
//! var/lib/lxc/<vmid>/config              LXC config, rebuilt on every `pct start` (lxcpath for -P)
//! var/lib/lxc/<vmid>/console.log         the container's console output
//! var/lib/pct-standin/path/              PATH for lxc tools: /usr/bin without newuidmap
//! ```

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::Failure;

/// The stand-in's tree and node name.
#[derive(Debug)]
pub struct Layout {
    pub root: PathBuf,
    pub node: String,
}

impl Layout {
    /// From `$PCT_STANDIN_ROOT` (required, made absolute) and `$PCT_STANDIN_NODE`.
    pub fn from_env() -> Result<Self, Failure> {
        let root = std::env::var_os("PCT_STANDIN_ROOT")
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                Failure::new(
                    "pct stand-in: PCT_STANDIN_ROOT is not set: point it at the stand-in's state directory (test code, not Proxmox)",
                )
            })?;
        let root = PathBuf::from(root);
        let root = std::path::absolute(&root).map_err(crate::io_fail("resolve", &root))?;
        let node = std::env::var("PCT_STANDIN_NODE").unwrap_or_else(|_| "pve".to_string());
        Layout::at(root, node)
    }

    /// The tree at `root` for node `node`, laid out if it is not yet.
    pub fn at(root: PathBuf, node: String) -> Result<Self, Failure> {
        let layout = Layout { root, node };
        layout.ensure().map_err(|e| {
            Failure::new(format!(
                "pct stand-in: cannot prepare {}: {e}",
                layout.root.display()
            ))
        })?;
        Ok(layout)
    }

    fn ensure(&self) -> io::Result<()> {
        fs::create_dir_all(self.node_lxc_dir())?;
        fs::create_dir_all(self.root.join("etc/pve/qemu-server"))?;
        fs::create_dir_all(self.lock_dir())?;
        fs::create_dir_all(self.lxcpath())?;
        fs::create_dir_all(self.root.join("var/lib/vz/template/cache"))?;
        let link = self.root.join("etc/pve/lxc");
        if fs::symlink_metadata(&link).is_err() {
            match symlink(format!("nodes/{}/lxc", self.node), &link) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
        }
        let cfg = self.storage_cfg();
        if !cfg.exists() {
            let text = format!(
                "dir: local\n\tpath {}\n\tcontent iso,vztmpl,backup\n\nlvmthin: local-lvm\n\tthinpool data\n\tvgname pve\n\tcontent rootdir,images\n",
                self.root.join("var/lib/vz").display()
            );
            write_new(&cfg, text.as_bytes())?;
        }
        Ok(())
    }

    pub fn pve(&self) -> PathBuf {
        self.root.join("etc/pve")
    }

    pub fn node_lxc_dir(&self) -> PathBuf {
        self.pve().join("nodes").join(&self.node).join("lxc")
    }

    /// `nodes/<node>/lxc/<vmid>.conf`, as pct names it in messages (relative to /etc/pve).
    pub fn cfs_path(&self, vmid: u32) -> String {
        format!("nodes/{}/lxc/{vmid}.conf", self.node)
    }

    pub fn conf_path(&self, vmid: u32) -> PathBuf {
        self.pve().join(self.cfs_path(vmid))
    }

    pub fn storage_cfg(&self) -> PathBuf {
        self.pve().join("storage.cfg")
    }

    pub fn lock_dir(&self) -> PathBuf {
        self.root.join("run/lock/lxc")
    }

    pub fn lock_path(&self, vmid: u32) -> PathBuf {
        self.lock_dir().join(format!("pve-config-{vmid}.lock"))
    }

    /// The LXC path for `lxc-start -P`, `lxc-info -P`, `lxc-attach -P`.
    pub fn lxcpath(&self) -> PathBuf {
        self.root.join("var/lib/lxc")
    }

    pub fn ct_dir(&self, vmid: u32) -> PathBuf {
        self.lxcpath().join(vmid.to_string())
    }

    /// Scratch files for captured command output.
    pub fn scratch(&self) -> PathBuf {
        self.root.join("run/pct-standin")
    }

    /// A directory of symlinks to /usr/bin's programs except newuidmap/newgidmap, so that
    /// LXC writes id maps itself as root (no /etc/subuid entries needed) while hooks still
    /// find their tools.
    pub fn tool_path(&self) -> io::Result<PathBuf> {
        let dir = self.root.join("var/lib/pct-standin/path");
        if dir.is_dir() {
            return Ok(dir);
        }
        let tmp = self
            .root
            .join(format!("var/lib/pct-standin/path.{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp)?;
        for bin in ["/usr/bin", "/bin"] {
            let Ok(entries) = fs::read_dir(bin) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                if name == "newuidmap" || name == "newgidmap" {
                    continue;
                }
                let _ = symlink(entry.path(), tmp.join(&name));
            }
        }
        if fs::rename(&tmp, &dir).is_err() {
            // Another process made it first.
            let _ = fs::remove_dir_all(&tmp);
        }
        Ok(dir)
    }

    /// The PATH for LXC tools: [`Layout::tool_path`] plus the sbin directories.
    pub fn lxc_env_path(&self) -> Result<String, Failure> {
        let dir = self.root.join("var/lib/pct-standin/path");
        let path = self.tool_path().map_err(crate::io_fail("prepare", &dir))?;
        Ok(format!("{}:/usr/sbin:/sbin", path.display()))
    }

    /// The cgroup directory of this root's containers, `pct-standin-<hash of root>`:
    /// parallel tests with roots of their own and the same VMIDs never share a cgroup.
    pub fn cgroup_prefix(&self) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.root.as_os_str().as_encoded_bytes() {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("pct-standin-{:012x}", hash & 0xffff_ffff_ffff)
    }

    /// Every VMID with a config under any node (`nodes/*/lxc`) or in `qemu-server`:
    /// (vmid, node, "CT" | "VM").
    pub fn all_guests(&self) -> Vec<(u32, String, &'static str)> {
        let mut out = Vec::new();
        if let Ok(nodes) = fs::read_dir(self.pve().join("nodes")) {
            for node in nodes.flatten() {
                let name = node.file_name().to_string_lossy().into_owned();
                for vmid in conf_ids(&node.path().join("lxc")) {
                    out.push((vmid, name.clone(), "CT"));
                }
                for vmid in conf_ids(&node.path().join("qemu-server")) {
                    out.push((vmid, name.clone(), "VM"));
                }
            }
        }
        for vmid in conf_ids(&self.pve().join("qemu-server")) {
            out.push((vmid, self.node.clone(), "VM"));
        }
        out
    }

    /// The VMIDs of this node's containers, sorted.
    pub fn local_cts(&self) -> Vec<u32> {
        let mut ids = conf_ids(&self.node_lxc_dir());
        ids.sort_unstable();
        ids
    }
}

fn conf_ids(dir: &Path) -> Vec<u32> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".conf")?.parse().ok())
        .collect()
}

/// Writes `path` only if it does not exist yet, atomically (a temp file hard-linked into
/// place): parallel first calls never see a half-written file.
fn write_new(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    fs::write(&tmp, data)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}
