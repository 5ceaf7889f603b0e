//! `mounts`: the standard ones of a runc spec as `lxc.mount.auto`, `lxc.autodev` and
//! `lxc.pty.max`; every other one as an `lxc.mount.entry`.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Mount;
use proxcage_oci::oci_spec;

use super::{unsupported, Builder};
use crate::error::TranslateError;
use crate::mounts::{lxc_option, resolve_in_rootfs, size_bytes};

/// The mounts of a runc spec that LXC provides itself, better than with entries.
enum Standard {
    Proc,
    Sys(bool),
    Cgroup(bool),
    Dev(Option<u64>),
    DevPts,
}

fn standard_mount(mount: &Mount, field: &str) -> Result<Option<Standard>, TranslateError> {
    let fstype = mount.typ().as_deref().unwrap_or("");
    let options = mount.options().clone().unwrap_or_default();
    let ro = options.iter().any(|o| o == "ro");
    let dest = mount.destination().to_str().unwrap_or("");
    Ok(match (dest.trim_end_matches('/'), fstype) {
        ("/proc", "proc") => {
            if ro {
                return Err(unsupported(
                    format!("{field}.options"),
                    "LXC mounts /proc read-write (read-only parts through readonlyPaths)",
                ));
            }
            Some(Standard::Proc)
        }
        ("/sys", "sysfs") => Some(Standard::Sys(ro)),
        ("/sys/fs/cgroup", "cgroup" | "cgroup2") => Some(Standard::Cgroup(ro)),
        ("/dev", "tmpfs") => {
            let size = options.iter().find_map(|o| o.strip_prefix("size="));
            let bytes = match size {
                None => None,
                Some(s) => Some(size_bytes(s).ok_or_else(|| {
                    unsupported(
                        format!("{field}.options"),
                        format!("size={s}: lxc.autodev.tmpfs.size takes bytes"),
                    )
                })?),
            };
            Some(Standard::Dev(bytes))
        }
        ("/dev/pts", "devpts") => Some(Standard::DevPts),
        _ => None,
    })
}

pub(super) fn mounts(b: &mut Builder<'_>) -> Result<(), TranslateError> {
    let mounts = b.spec.mounts().clone().unwrap_or_default();
    let mut auto = Vec::new();
    let mut autodev = false;
    for (i, mount) in mounts.iter().enumerate() {
        let field = format!("mounts[{i}]");
        if mount.uid_mappings().is_some() || mount.gid_mappings().is_some() {
            return Err(unsupported(
                format!("{field}.uidMappings"),
                "LXC 5.0 has no id-mapped mount entries",
            ));
        }
        match standard_mount(mount, &field)? {
            Some(Standard::Proc) => auto.push("proc:rw"),
            Some(Standard::Sys(ro)) => auto.push(if ro { "sys:ro" } else { "sys:rw" }),
            Some(Standard::Cgroup(ro)) => auto.push(if ro {
                "cgroup:ro:force"
            } else {
                "cgroup:rw:force"
            }),
            Some(Standard::Dev(size)) => {
                autodev = true;
                if let Some(size) = size {
                    b.push(
                        &format!("{field}.options"),
                        "lxc.autodev.tmpfs.size",
                        size.to_string(),
                    )?;
                }
            }
            Some(Standard::DevPts) => b.push(&field, "lxc.pty.max", "1024")?,
            None => mount_entry(b, i, mount, &field)?,
        }
    }
    if !auto.is_empty() {
        b.push("mounts", "lxc.mount.auto", auto.join(" "))?;
    }
    // Proxmox mounts /proc, /sys and /dev on every CT (common.conf's lxc.mount.auto and
    // autodev) whatever the spec says, and LXC cannot make their mount points on a
    // read-only root: an image FROM scratch has none of them.
    for dir in ["proc", "sys", "dev"] {
        b.targets.push(super::MountTarget {
            path: b.paths.rootfs.join(dir),
            dir: true,
        });
    }
    b.push("mounts", "lxc.autodev", if autodev { "1" } else { "0" })
}

fn mount_entry(
    b: &mut Builder<'_>,
    i: usize,
    mount: &Mount,
    field: &str,
) -> Result<(), TranslateError> {
    let mut fstype = mount.typ().clone().unwrap_or_else(|| "none".into());
    let options = mount.options().clone().unwrap_or_default();
    let is_bind = fstype == "bind" || options.iter().any(|o| o == "bind" || o == "rbind");
    if fstype == "cgroup" {
        fstype = "cgroup2".into();
    }
    if is_bind {
        fstype = "none".into();
    }
    let target = resolve_in_rootfs(
        &b.paths.rootfs,
        mount.destination(),
        &format!("{field}.destination"),
    )?;
    let mut lxc_options = Vec::new();
    if is_bind && !options.iter().any(|o| o == "bind" || o == "rbind") {
        lxc_options.push("bind".to_string());
    }
    lxc_options.extend(entry_options(b, mount, &fstype, &target, field)?);
    let source = match b.paths.mount_sources.get(i).cloned().flatten() {
        Some(s) => s,
        None => mount
            .source()
            .clone()
            .unwrap_or_else(|| PathBuf::from(&fstype)),
    };
    let dir = if is_bind {
        match std::fs::metadata(&source) {
            Ok(meta) => meta.is_dir(),
            Err(err) => {
                return Err(TranslateError::Rootfs {
                    field: format!("{field}.source"),
                    path: source,
                    source: err,
                })
            }
        }
    } else {
        true
    };
    // Note: LXC 5.0.2 applies nosuid/nodev/noexec to a bind mount only when it is
    // read-only ("Mountflags already were ..., skipping remount"); a read-write bind keeps
    // the source's flags. The options are written anyway: LXC 6 applies them.
    b.mount_entry(field, &source, &target, &fstype, &lxc_options, dir)
}

/// The mount's options as LXC takes them, refusing what it cannot do.
fn entry_options(
    b: &Builder<'_>,
    mount: &Mount,
    fstype: &str,
    target: &Path,
    field: &str,
) -> Result<Vec<String>, TranslateError> {
    let mut out = Vec::new();
    for (j, option) in mount.options().iter().flatten().enumerate() {
        if option == "tmpcopyup" {
            // Copying the directory's content into the new tmpfs is a no-op when there is
            // nothing to copy; otherwise LXC cannot do it.
            let host = b.paths.rootfs.join(target);
            let empty = std::fs::read_dir(&host)
                .map(|mut d| d.next().is_none())
                .unwrap_or(true);
            if !empty {
                return Err(unsupported(
                    format!("{field}.options[{j}]"),
                    format!(
                        "tmpcopyup: {} has content to copy into the tmpfs, which LXC cannot do",
                        mount.destination().display()
                    ),
                ));
            }
            continue;
        }
        match lxc_option(fstype, option) {
            Ok(Some(o)) => out.push(o),
            Ok(None) => {}
            Err(reason) => return Err(unsupported(format!("{field}.options[{j}]"), reason)),
        }
    }
    Ok(out)
}
