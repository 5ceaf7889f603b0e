//! Mount destinations resolved inside the rootfs, and mount options translated for
//! `lxc.mount.entry`.

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::error::TranslateError;

/// How many symbolic links one destination may pass through, as the kernel's limit.
const MAX_SYMLINKS: usize = 40;

/// Resolves `dest` (absolute, as in the container) inside `rootfs`, component by
/// component: symbolic links are followed as the container would see them (an absolute
/// link target restarts at the rootfs), `..` never leaves the rootfs: a path that tries is
/// an error. Components that do not exist yet are kept as written. The result is relative
/// to the rootfs (`srv/data`), as LXC wants targets, and never contains a symlink that
/// exists now.
pub(crate) fn resolve_in_rootfs(
    rootfs: &Path,
    dest: &Path,
    field: &str,
) -> Result<PathBuf, TranslateError> {
    let escape = || TranslateError::Invalid {
        field: field.into(),
        reason: format!("{} leaves the container's root filesystem", dest.display()),
    };
    let mut pending: Vec<OsString> = components(dest).into_iter().rev().collect();
    let mut resolved = PathBuf::new();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            if !resolved.pop() {
                return Err(escape());
            }
            continue;
        }
        let candidate = resolved.join(&part);
        let host = rootfs.join(&candidate);
        match std::fs::symlink_metadata(&host) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(TranslateError::Invalid {
                        field: field.into(),
                        reason: format!("{}: too many levels of symbolic links", dest.display()),
                    });
                }
                let target =
                    std::fs::read_link(&host).map_err(|source| TranslateError::Rootfs {
                        field: field.into(),
                        path: host.clone(),
                        source,
                    })?;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                pending.extend(components(&target).into_iter().rev());
            }
            Ok(_) => resolved = candidate,
            Err(err)
                if err.kind() == io::ErrorKind::NotFound
                    || err.raw_os_error() == Some(libc_enotdir()) =>
            {
                resolved = candidate
            }
            Err(source) => {
                return Err(TranslateError::Rootfs {
                    field: field.into(),
                    path: host,
                    source,
                })
            }
        }
    }
    if resolved.as_os_str().is_empty() {
        return Err(TranslateError::Invalid {
            field: field.into(),
            reason: format!(
                "{} is the root of the container; mount it as `root` instead",
                dest.display()
            ),
        });
    }
    Ok(resolved)
}

fn libc_enotdir() -> i32 {
    20
}

fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// A path as a field of an fstab line: blanks and backslashes octal-escaped as getmntent(3)
/// reads them back; `None` for a path that is not UTF-8 (the config is text).
pub(crate) fn fstab_escape(path: &Path) -> Option<String> {
    let text = path.to_str()?;
    Some(
        text.replace('\\', "\\134")
            .replace(' ', "\\040")
            .replace('\t', "\\011")
            .replace('\n', "\\012"),
    )
}

/// Options of an OCI mount made into LXC's: `None` drops an option LXC rejects for this
/// file system type (and that has no effect LXC would not give anyway); an `Err` names an
/// option LXC cannot express.
pub(crate) fn lxc_option(fstype: &str, option: &str) -> Result<Option<String>, String> {
    let propagation = [
        "private",
        "rprivate",
        "shared",
        "rshared",
        "slave",
        "rslave",
        "unbindable",
        "runbindable",
    ];
    match option {
        "idmap" | "ridmap" => Err(format!(
            "`{option}` (id-mapped mounts) is not supported by LXC 5.0 mount entries"
        )),
        "rro" | "rrw" | "rnosuid" | "rsuid" | "rnodev" | "rdev" | "rnoexec" | "rexec"
        | "rnoatime" | "ratime" | "rrelatime" | "rnorelatime" | "rstrictatime"
        | "rnostrictatime" | "rnodiratime" | "rdiratime" | "rnosymfollow" | "rsymfollow" => Err(
            format!("`{option}` (recursive mount attribute) is not supported by LXC 5.0"),
        ),
        "rprivate" if fstype == "tmpfs" => Ok(None),
        "rslave" if fstype == "sysfs" => Ok(None),
        "private" | "rslave" if fstype == "cgroup2" => Ok(None),
        // LXC's own options would be misread if they came from the spec.
        "optional" | "create=dir" | "create=file" | "relative" => Err(format!(
            "`{option}` is an LXC-only option and not valid in an OCI mount"
        )),
        o if propagation.contains(&o) => Ok(Some(o.to_string())),
        o if o.contains([' ', '\t', '\n', ',']) => {
            Err(format!("option {o:?} contains a blank or comma"))
        }
        o => Ok(Some(o.to_string())),
    }
}

/// `size=` of a tmpfs in bytes: `65536k`, `64m`, `1g`, or a plain number. Percentages
/// cannot be converted.
pub(crate) fn size_bytes(value: &str) -> Option<u64> {
    let (digits, unit) = match value.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => value.split_at(i),
        None => (value, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let factor = match unit.to_ascii_lowercase().as_str() {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn resolves_symlinks_inside_the_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("real/dir")).unwrap();
        std::fs::create_dir_all(root.join("var")).unwrap();
        symlink("/real", root.join("abs")).unwrap();
        symlink("../real/dir", root.join("var/rel")).unwrap();
        symlink("/../../../etc", root.join("sneaky")).unwrap();
        let r = |p: &str| resolve_in_rootfs(root, Path::new(p), "mounts[0].destination");
        assert_eq!(r("/abs/dir/x").unwrap(), PathBuf::from("real/dir/x"));
        assert_eq!(r("/var/rel/y z").unwrap(), PathBuf::from("real/dir/y z"));
        assert_eq!(r("/new/./a/../b").unwrap(), PathBuf::from("new/b"));
        let err = r("/../etc").unwrap_err();
        assert!(err.to_string().contains("mounts[0].destination"), "{err}");
        assert!(r("/sneaky/passwd").is_err());
        assert!(r("/").is_err());
    }

    #[test]
    fn escapes_blanks_and_backslashes() {
        assert_eq!(
            fstab_escape(Path::new("/a b\\c\td")).unwrap(),
            "/a\\040b\\134c\\011d"
        );
        assert_eq!(fstab_escape(Path::new("/ü x")).unwrap(), "/ü\\040x");
    }

    #[test]
    fn sizes() {
        assert_eq!(size_bytes("65536k"), Some(64 << 20));
        assert_eq!(size_bytes("1G"), Some(1 << 30));
        assert_eq!(size_bytes("100"), Some(100));
        assert_eq!(size_bytes("50%"), None);
    }
}
