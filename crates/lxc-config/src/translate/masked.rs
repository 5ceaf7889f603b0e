//! `linux.maskedPaths` (a read-only tmpfs over a directory, `/dev/null` over anything else)
//! and `linux.readonlyPaths` (a read-only bind mount of the path onto itself).

use std::path::{Path, PathBuf};

use oci_spec::runtime::Linux;
use proxcage_oci::oci_spec;

use super::{invalid, unsupported, Builder};
use crate::error::TranslateError;
use crate::mounts::{fstab_escape, resolve_in_rootfs};

/// Directories among the kernel paths that runtimes mask or make read-only, so that the
/// translation does not depend on which of them the host's kernel has.
const KERNEL_DIRS: [&str; 9] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/scsi",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Files among the kernel paths that runc's default spec masks or makes read-only: like
/// [`KERNEL_DIRS`], known without a look at the host (a stat in /proc costs more than the
/// rest of the translation).
const KERNEL_FILES: [&str; 7] = [
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/sysrq-trigger",
];

/// Resolves masked and read-only paths in the rootfs. Below /proc and /sys the kernel's
/// filesystems are mounted by then: only the mount point is looked up in the rootfs (it
/// may be a link), once per translation; the rest is the kernel's and kept as written.
#[derive(Default)]
struct MaskedPaths {
    mount_points: Vec<(&'static str, PathBuf)>,
}

impl MaskedPaths {
    fn resolve(
        &mut self,
        rootfs: &Path,
        path: &Path,
        field: &str,
    ) -> Result<PathBuf, TranslateError> {
        for top in ["/proc", "/sys"] {
            let Ok(rest) = path.strip_prefix(top) else {
                continue;
            };
            let plain = rest
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !plain || rest.as_os_str().is_empty() {
                break;
            }
            let mount_point = match self.mount_points.iter().find(|(t, _)| *t == top) {
                Some((_, resolved)) => resolved.clone(),
                None => {
                    let resolved = resolve_in_rootfs(rootfs, Path::new(top), field)?;
                    self.mount_points.push((top, resolved.clone()));
                    resolved
                }
            };
            return Ok(mount_point.join(rest));
        }
        resolve_in_rootfs(rootfs, path, field)
    }
}

/// What a masked or read-only path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    /// A FIFO, socket or device node in the rootfs: LXC opens a mount target (and a bind
    /// source) before it mounts, which blocks on a FIFO until a writer comes, fails on a
    /// socket (and an `optional` entry is then skipped: the path stays unmasked), and may
    /// act on a device.
    Special(&'static str),
}

/// What `path` (absolute, in the container; `target` resolved in the rootfs) is. /proc
/// and /sys come from the kernel, not the rootfs: known directories, else the host's own,
/// else a file (the entry is `optional`, so LXC skips what the kernel lacks). Elsewhere
/// the rootfs decides; `None` when the path is not in it: there is nothing to mask, as
/// runc ignores it too.
fn kind_in_container(rootfs: &Path, path: &Path, target: &Path) -> Option<Kind> {
    use std::os::unix::fs::FileTypeExt;
    if path.starts_with("/proc") || path.starts_with("/sys") {
        if KERNEL_DIRS.iter().any(|d| Path::new(d) == path) {
            return Some(Kind::Dir);
        }
        if KERNEL_FILES.iter().any(|f| Path::new(f) == path) {
            return Some(Kind::File);
        }
        let dir = std::fs::metadata(path).is_ok_and(|m| m.is_dir());
        return Some(if dir { Kind::Dir } else { Kind::File });
    }
    let kind = std::fs::metadata(rootfs.join(target)).ok()?.file_type();
    Some(if kind.is_dir() {
        Kind::Dir
    } else if kind.is_fifo() {
        Kind::Special("a FIFO")
    } else if kind.is_socket() {
        Kind::Special("a socket")
    } else if kind.is_char_device() {
        Kind::Special("a character device")
    } else if kind.is_block_device() {
        Kind::Special("a block device")
    } else {
        Kind::File
    })
}

/// The refusal of a path LXC cannot mount over without opening it.
fn special(field: String, path: &str, what: &str) -> TranslateError {
    unsupported(
        field,
        format!(
            "{path} is {what} in the root filesystem: LXC opens what it mounts over, which blocks on a FIFO, fails on a socket and may act on a device; remove it from the rootfs or from the list"
        ),
    )
}

/// Both lists, sharing the resolved mount points of /proc and /sys.
pub(super) fn masked_and_readonly(b: &mut Builder<'_>) -> Result<(), TranslateError> {
    let Some(linux) = b.spec.linux().clone() else {
        return Ok(());
    };
    let mut resolver = MaskedPaths::default();
    masked(b, &linux, &mut resolver)?;
    readonly(b, &linux, &mut resolver)
}

fn masked(
    b: &mut Builder<'_>,
    linux: &Linux,
    resolver: &mut MaskedPaths,
) -> Result<(), TranslateError> {
    for (i, path) in linux.masked_paths().iter().flatten().enumerate() {
        let field = format!("linux.maskedPaths[{i}]");
        let p = Path::new(path);
        if !p.is_absolute() {
            return Err(invalid(field, format!("{path:?} is not absolute")));
        }
        let target = resolver.resolve(&b.paths.rootfs, p, &field)?;
        let Some(kind) = kind_in_container(&b.paths.rootfs, p, &target) else {
            continue;
        };
        let escaped = fstab_escape(&target).ok_or_else(|| invalid(&field, "not UTF-8"))?;
        let line = match kind {
            Kind::Dir => format!("tmpfs {escaped} tmpfs ro,optional 0 0"),
            Kind::File => format!("/dev/null {escaped} none bind,optional 0 0"),
            Kind::Special(what) => return Err(special(field, path, what)),
        };
        b.push(&field, "lxc.mount.entry", line)?;
    }
    Ok(())
}

fn readonly(
    b: &mut Builder<'_>,
    linux: &Linux,
    resolver: &mut MaskedPaths,
) -> Result<(), TranslateError> {
    let rootfs = b.paths.rootfs.clone();
    for (i, path) in linux.readonly_paths().iter().flatten().enumerate() {
        let field = format!("linux.readonlyPaths[{i}]");
        let p = Path::new(path);
        if !p.is_absolute() {
            return Err(invalid(field, format!("{path:?} is not absolute")));
        }
        let target = resolver.resolve(&rootfs, p, &field)?;
        match kind_in_container(&rootfs, p, &target) {
            None => continue,
            Some(Kind::Special(what)) => return Err(special(field, path, what)),
            Some(Kind::Dir | Kind::File) => {}
        }
        let escaped = fstab_escape(&target).ok_or_else(|| invalid(&field, "not UTF-8"))?;
        let source =
            fstab_escape(&rootfs.join(&target)).ok_or_else(|| invalid(&field, "not UTF-8"))?;
        b.push(
            &field,
            "lxc.mount.entry",
            format!("{source} {escaped} none bind,ro,optional 0 0"),
        )?;
    }
    Ok(())
}
