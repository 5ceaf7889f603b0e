//! `[security] pct_bind_sources` of the config file: the host directories that bind
//! mounts of pct containers (the CT's `mpN`) may take their source from. The backend
//! checks it on the bundle it creates the CT from, so what is checked is what is mounted.

use std::path::{Path, PathBuf};

use proxcage_core::error::quoted_list;
use proxcage_core::{ContainerId, Error, Result};
use proxcage_oci::Bundle;

/// Where bind-mount sources of pct containers may come from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BindSources {
    /// `None`: any host path.
    allowed: Option<Vec<PathBuf>>,
    /// The config file the policy comes from, for messages.
    origin: PathBuf,
}

impl BindSources {
    /// Any host path may be bind-mounted.
    pub fn any() -> Self {
        BindSources::default()
    }

    /// Sources must be inside one of `allowed` (`None`: anywhere); `origin` is the config
    /// file that says so, named in refusals.
    pub fn new(allowed: Option<Vec<PathBuf>>, origin: impl Into<PathBuf>) -> Self {
        BindSources {
            allowed,
            origin: origin.into(),
        }
    }

    /// Refuses the first host path a mount of `bundle` names outside the allowed
    /// directories, as written or with its links resolved: a bind mount's source, an
    /// absolute source of any other mount (a device, a directory), and the paths in
    /// options that name host directories (overlay's `lowerdir`, `upperdir`, `workdir`).
    pub fn check(&self, id: &ContainerId, bundle: &Bundle) -> Result<()> {
        let Some(allowed) = &self.allowed else {
            return Ok(());
        };
        for named in host_paths(bundle) {
            let Err(refusal) = admissible(&named.path, allowed) else {
                continue;
            };
            let verb = if named.field == "source" && named.bind {
                "bind-mount"
            } else {
                "mount from"
            };
            let path = named.path.display();
            let config = bundle.config_path().display();
            let origin = self.origin.display();
            let (what, why, fix) = match refusal {
                Refusal::Outside(real) => (
                    match real {
                        Some(real) => format!("{path} (really {})", real.display()),
                        None => path.to_string(),
                    },
                    format!("is outside the host directories the [security] policy of {origin} lets pct containers {verb}"),
                    format!("pct_bind_sources allows {}", quoted_list(allowed)),
                ),
                Refusal::Link(real) => (
                    format!("{path} (really {})", real.display()),
                    format!("goes through a symbolic link, which could be pointed elsewhere after this check (the [security] policy of {origin} holds for pct containers)"),
                    "name the real path".into(),
                ),
                Refusal::Writable(dir) => (
                    path.to_string(),
                    format!("lies below {}, which others than root may write: a directory there could be swapped for a link after this check (the [security] policy of {origin} holds for pct containers)", dir.display()),
                    format!("make {} root's alone (owner root, no group or other write), or move the source", dir.display()),
                ),
            };
            return Err(Error::Policy {
                id: id.clone(),
                what: format!("mounts[{}].{} {what} in {config}", named.index, named.field),
                why,
                fix,
            });
        }
        Ok(())
    }
}

/// A host path a mount names.
struct Named {
    index: usize,
    /// `source`, or `options <key>` for a path in an option.
    field: String,
    bind: bool,
    path: PathBuf,
}

/// Mount options whose values are host paths, `:`-separated (overlayfs). A path holding
/// an escaped `:` is split apart and its pieces fail the check: refused, not guessed at.
const PATH_OPTIONS: &[&str] = &["lowerdir", "upperdir", "workdir", "lowerdir+", "datadir+"];

/// Every host path the mounts of `bundle` name, by index in `mounts`.
fn host_paths(bundle: &Bundle) -> Vec<Named> {
    let mounts = bundle.spec().mounts().as_deref().unwrap_or_default();
    let mut out = Vec::new();
    for (index, (mount, source)) in mounts.iter().zip(bundle.mount_sources()).enumerate() {
        let options = mount.options().as_deref().unwrap_or_default();
        let bind = mount.typ().as_deref() == Some("bind")
            || options.iter().any(|o| o == "bind" || o == "rbind");
        // A bind mount's source is a host path however written (relative ones were
        // resolved against the bundle); another mount's source is one when absolute.
        if let Some(source) = source.as_ref().filter(|s| bind || s.is_absolute()) {
            out.push(Named {
                index,
                field: "source".into(),
                bind,
                path: source.clone(),
            });
        }
        for option in options {
            let Some((key, value)) = option.split_once('=') else {
                continue;
            };
            if !PATH_OPTIONS.contains(&key) {
                continue;
            }
            for path in value.split(':') {
                out.push(Named {
                    index,
                    field: format!("options {key}="),
                    bind,
                    path: PathBuf::from(path),
                });
            }
        }
    }
    out
}

/// Why a host path may not be mounted.
enum Refusal {
    /// Outside the allowed directories, as written or (the real path) resolved.
    Outside(Option<PathBuf>),
    /// Inside, but through a symbolic link: the real path.
    Link(PathBuf),
    /// Below a directory others than root may write.
    Writable(PathBuf),
}

/// Ok when `source` is inside one of `allowed` as written (cleaned of `.` and `..`), has
/// no symbolic link in it, and no directory above it may be written by others than root.
/// What is checked then stays what is mounted: Proxmox walks an `mpN` source again
/// without following links at every start, but LXC follows them in the source of a raw
/// `lxc.mount.entry`, so no one but root may be able to swap a directory on the way.
fn admissible(source: &Path, allowed: &[PathBuf]) -> std::result::Result<(), Refusal> {
    let within = |p: &Path| allowed.iter().any(|dir| p.starts_with(clean(dir)));
    let written = clean(source);
    let real = std::fs::canonicalize(source).ok();
    if !written.is_absolute() || !within(&written) || !real.as_deref().is_none_or(within) {
        return Err(Refusal::Outside(real.filter(|r| *r != written)));
    }
    if let Some(real) = real.filter(|r| *r != written) {
        return Err(Refusal::Link(real));
    }
    match writable_above(&written) {
        Some(dir) => Err(Refusal::Writable(dir)),
        None => Ok(()),
    }
}

/// The first directory above `path` (absolute, without links) in which someone other
/// than root could replace the next component: not owned by root, or writable by group
/// or others (a sticky directory only when the next component is not root's).
fn writable_above(path: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let mut dir = PathBuf::from("/");
    for component in path.components().skip(1) {
        let next = dir.join(component);
        let meta = std::fs::symlink_metadata(&dir).ok()?;
        let open = meta.mode() & 0o022 != 0;
        let sticky = meta.mode() & 0o1000 != 0;
        let next_root = std::fs::symlink_metadata(&next).is_ok_and(|m| m.uid() == 0);
        if meta.uid() != 0 || (open && !(sticky && next_root)) {
            return Some(dir);
        }
        dir = next;
    }
    None
}

/// `.` and `..` taken out lexically (never above `/`).
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const ORIGIN: &str = "/etc/proxcage/config.toml";

    fn bundle(config: serde_json::Value) -> (tempfile::TempDir, Bundle) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("rootfs")).unwrap();
        let mut spec = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"cwd": "/", "user": {"uid": 0, "gid": 0}, "args": ["sh"]},
        });
        for (k, v) in config.as_object().unwrap() {
            spec[k] = v.clone();
        }
        fs::write(dir.path().join("config.json"), spec.to_string()).unwrap();
        let bundle = Bundle::load(dir.path()).unwrap();
        (dir, bundle)
    }

    fn check(p: &BindSources, b: &Bundle) -> String {
        match p.check(&ContainerId::new("c1").unwrap(), b) {
            Ok(()) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn without_the_key_any_source_is_allowed() {
        let (_d, b) = bundle(serde_json::json!({
            "mounts": [{"destination": "/etc2", "type": "bind", "source": "/etc"}],
        }));
        assert_eq!(check(&BindSources::any(), &b), "ok");
    }

    #[test]
    fn pct_bind_sources_must_be_inside_the_allowed_directories() {
        let allowed = tempfile::tempdir().unwrap();
        fs::create_dir(allowed.path().join("data")).unwrap();
        std::os::unix::fs::symlink("/etc", allowed.path().join("sneaky")).unwrap();
        let p = BindSources::new(Some(vec![allowed.path().to_path_buf()]), ORIGIN);
        let mount = |source: &Path| {
            serde_json::json!({"mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/d", "type": "none", "source": source, "options": ["rbind", "ro"]},
            ]})
        };
        let (_d, ok) = bundle(mount(&allowed.path().join("data")));
        assert_eq!(check(&p, &ok), "ok");

        let (dir, etc) = bundle(mount(Path::new("/etc")));
        assert_eq!(
            check(&p, &etc),
            format!(
                "container c1: mounts[1].source /etc in {}/config.json is outside the host directories the [security] policy of {ORIGIN} lets pct containers bind-mount: pct_bind_sources allows {:?}",
                dir.path().display(),
                allowed.path()
            )
        );

        // `..` and links out of an allowed directory are outside.
        let (_d, up) = bundle(mount(&allowed.path().join("data/../../etc")));
        assert!(check(&p, &up).contains("is outside"));
        let (_d, link) = bundle(mount(&allowed.path().join("sneaky")));
        let err = check(&p, &link);
        assert!(err.contains("(really /etc)"), "{err}");
        assert!(err.contains("is outside"), "{err}");
        // A prefix of a name is not a parent directory.
        let (_d, sibling) = bundle(mount(Path::new(&format!("{}x", allowed.path().display()))));
        assert!(check(&p, &sibling).contains("is outside"));
    }

    /// Issue 22 item 6: an overlay naming host directories in its options, and a mount
    /// of another type whose source is a host path, are under the policy too.
    #[test]
    fn host_paths_in_options_and_other_mount_types_are_under_the_policy() {
        let allowed = tempfile::tempdir().unwrap();
        for sub in ["lower", "upper", "work"] {
            fs::create_dir(allowed.path().join(sub)).unwrap();
        }
        let a = |sub: &str| allowed.path().join(sub).display().to_string();
        let p = BindSources::new(Some(vec![allowed.path().to_path_buf()]), ORIGIN);
        let overlay = |options: Vec<String>| {
            serde_json::json!({"mounts": [
                {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"},
                {"destination": "/o", "type": "overlay", "source": "overlay", "options": options},
            ]})
        };
        let (_d, ok) = bundle(overlay(vec![
            format!("lowerdir={}:{}", a("lower"), a("upper")),
            format!("upperdir={}", a("upper")),
            format!("workdir={}", a("work")),
        ]));
        assert_eq!(check(&p, &ok), "ok");
        let (_d, etc) = bundle(overlay(vec![format!("lowerdir={}:/etc", a("lower"))]));
        let err = check(&p, &etc);
        assert!(err.contains("mounts[1].options lowerdir= /etc in"), "{err}");
        assert!(err.contains("lets pct containers mount from"), "{err}");
        for option in ["upperdir=/root", "workdir=/var/tmp", "lowerdir+=/etc"] {
            let (_d, b) = bundle(overlay(vec![option.to_string()]));
            assert!(check(&p, &b).contains("is outside"), "{option}");
        }
        let (_d, device) = bundle(serde_json::json!({"mounts": [
            {"destination": "/disk", "type": "ext4", "source": "/dev/sda1"},
        ]}));
        let err = check(&p, &device);
        assert!(err.contains("mounts[0].source /dev/sda1"), "{err}");
    }

    /// Issue 22 item 5: what is checked must stay what is mounted. A link inside the
    /// allowed directory, even to another allowed path, is refused (it can be pointed
    /// elsewhere later); so is a source below a directory others than root may write
    /// (a directory there can be swapped for a link after the check).
    #[test]
    fn sources_that_can_be_swapped_after_the_check_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        proxcage_test_support::require_root();
        let allowed = tempfile::tempdir().unwrap();
        fs::create_dir(allowed.path().join("data")).unwrap();
        std::os::unix::fs::symlink(allowed.path().join("data"), allowed.path().join("alias"))
            .unwrap();
        let p = BindSources::new(Some(vec![allowed.path().to_path_buf()]), ORIGIN);
        let mount = |source: &Path| {
            serde_json::json!({"mounts": [
                {"destination": "/d", "type": "bind", "source": source, "options": ["rbind"]},
            ]})
        };
        let (_d, ok) = bundle(mount(&allowed.path().join("data")));
        assert_eq!(check(&p, &ok), "ok");
        let (_d, alias) = bundle(mount(&allowed.path().join("alias")));
        let err = check(&p, &alias);
        assert!(err.contains("goes through a symbolic link"), "{err}");

        // A directory a container's root (uid 100000) owns, or anyone may write.
        let shared = allowed.path().join("shared");
        fs::create_dir_all(shared.join("data")).unwrap();
        std::os::unix::fs::chown(&shared, Some(100_000), Some(100_000)).unwrap();
        let (_d, owned) = bundle(mount(&shared.join("data")));
        let err = check(&p, &owned);
        assert!(
            err.contains(&format!(
                "lies below {}, which others than root may write",
                shared.display()
            )),
            "{err}"
        );
        std::os::unix::fs::chown(&shared, Some(0), Some(0)).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
        let (_d, open) = bundle(mount(&shared.join("data")));
        assert!(check(&p, &open).contains("others than root may write"));
        // Sticky, like /tmp: only the owner of an entry may rename it; root owns data.
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
        let (_d, sticky) = bundle(mount(&shared.join("data")));
        assert_eq!(check(&p, &sticky), "ok");
    }
}
