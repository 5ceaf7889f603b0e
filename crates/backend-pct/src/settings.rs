//! `[backends.pct]` in the config file. Every path and tool is a setting, so the backend
//! runs against Proxmox itself or against a stand-in in tests.

use std::path::{Path, PathBuf};

use proxcage_core::{Error, Result};
use serde::Deserialize;

use crate::vmid::VmidRange;

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PctSettings {
    /// The pct tool (default `pct` in PATH).
    pub pct: Option<PathBuf>,
    /// The pvesh tool (default `pvesh` in PATH).
    pub pvesh: Option<PathBuf>,
    /// lxc-info, for the init's host pid (default `lxc-info` in PATH).
    pub lxc_info: Option<PathBuf>,
    /// LXC's path for `lxc-info -P` (default: LXC's own, /var/lib/lxc).
    pub lxc_path: Option<PathBuf>,
    /// The cluster file system (default /etc/pve): `<pve_dir>/lxc/<vmid>.conf`.
    pub pve_dir: Option<PathBuf>,
    /// Where pct's config locks live (default /run/lock/lxc).
    pub lock_dir: Option<PathBuf>,
    /// Storage for the CT's root disk (default local-lvm; stock `local` has no rootdir).
    pub rootfs_storage: Option<String>,
    /// Size of the root disk in GiB (default 4).
    pub rootfs_size_gib: Option<u32>,
    /// Storage the templates go to (default local).
    pub template_storage: Option<String>,
    /// That storage's template directory (default /var/lib/vz/template/cache).
    pub template_dir: Option<PathBuf>,
    /// The VMIDs proxcage may use: `{ first = 9000, last = 9999 }` (default: any).
    pub vmid_range: Option<VmidRange>,
    /// Seconds a pct or pvesh command may take (default 300: create unpacks templates).
    pub timeout_secs: Option<u64>,
    /// The CT's first network interface as pct's `--net0` value, e.g.
    /// `name=eth0,bridge=vmbr0,ip=dhcp` (default: none; the CT has loopback only).
    pub net0: Option<String>,
    /// Host directory for the files proxcage bind-mounts into CTs (init, process file);
    /// must be traversable by unprivileged CTs' root (uid 100000). Default
    /// /var/lib/proxcage/pct.
    pub files_dir: Option<PathBuf>,
    /// Raw LXC key prefixes Proxmox would drop that may be left out instead of failing the
    /// create (e.g. `lxc.no_new_privs`). Default: none; every such key is an error.
    #[serde(default)]
    pub allow_dropped: Vec<String>,
}

impl PctSettings {
    /// The storage templates go to.
    pub fn template_storage(&self) -> String {
        self.template_storage
            .clone()
            .unwrap_or_else(|| "local".into())
    }

    /// That storage's template directory.
    pub fn template_dir(&self) -> PathBuf {
        self.template_dir
            .clone()
            .unwrap_or_else(|| "/var/lib/vz/template/cache".into())
    }

    /// Where `template create` puts a template: `storage` (else the configured one) and
    /// `dir` (else the configured directory, which belongs to the configured storage
    /// only). The directory must exist: the error says how to name another.
    pub fn template_target(
        &self,
        storage: Option<&str>,
        dir: Option<&Path>,
    ) -> Result<(String, PathBuf)> {
        let configured = self.template_storage();
        let storage = storage.map_or_else(|| configured.clone(), str::to_string);
        let dir = match dir {
            Some(dir) => dir.to_path_buf(),
            None if storage == configured => self.template_dir(),
            None => {
                return Err(Error::Input(
                    format!(
                        "proxcage knows the template directory of storage '{configured}' only ([backends.pct] template_dir): pass --dir for storage '{storage}'"
                    )
                    .into(),
                ))
            }
        };
        if !dir.is_dir() {
            return Err(Error::Input(
                format!(
                    "the template directory {} does not exist (is this a Proxmox host?): pass --dir DIR, or set [backends.pct] template_dir (and template_storage) in the config file",
                    dir.display()
                )
                .into(),
            ));
        }
        Ok((storage, dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_parses_and_unknown_keys_are_named() {
        let s: PctSettings = toml::from_str(
            r#"
pct = "/usr/sbin/pct"
pvesh = "/usr/bin/pvesh"
lxc_info = "/usr/bin/lxc-info"
lxc_path = "/var/lib/lxc"
pve_dir = "/etc/pve"
lock_dir = "/run/lock/lxc"
rootfs_storage = "local-zfs"
rootfs_size_gib = 8
template_storage = "local"
template_dir = "/var/lib/vz/template/cache"
vmid_range = { first = 9000, last = 9999 }
timeout_secs = 600
net0 = "name=eth0,bridge=vmbr0,ip=dhcp"
files_dir = "/var/lib/proxcage/pct"
allow_dropped = ["lxc.no_new_privs"]
"#,
        )
        .unwrap();
        assert_eq!(s.vmid_range.unwrap().first().get(), 9000);
        let err = toml::from_str::<PctSettings>("storage = \"x\"").unwrap_err();
        assert!(err.to_string().contains("unknown field `storage`"), "{err}");
        let err =
            toml::from_str::<PctSettings>("vmid_range = { first = 50, last = 60 }").unwrap_err();
        assert!(err.to_string().contains("VMID 50"), "{err}");
    }
}
