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

    /// Refuses the first bind mount of `bundle` whose source is outside the allowed
    /// directories, as written or with its links resolved.
    pub fn check(&self, id: &ContainerId, bundle: &Bundle) -> Result<()> {
        let Some(allowed) = &self.allowed else {
            return Ok(());
        };
        for (index, source) in bind_sources(bundle) {
            if let Err(real) = inside(&source, allowed) {
                let shown = match real {
                    Some(real) => format!("{} (really {})", source.display(), real.display()),
                    None => source.display().to_string(),
                };
                return Err(Error::Policy {
                    id: id.clone(),
                    what: format!("mounts[{index}].source {shown} in {}", bundle.config_path().display()),
                    why: format!("is outside the host directories the [security] policy of {} lets pct containers bind-mount", self.origin.display()),
                    fix: format!("pct_bind_sources allows {}", quoted_list(allowed)),
                });
            }
        }
        Ok(())
    }
}

/// The resolved source of every bind mount, by its index in `mounts`.
fn bind_sources(bundle: &Bundle) -> Vec<(usize, PathBuf)> {
    let mounts = bundle.spec().mounts().as_deref().unwrap_or_default();
    mounts
        .iter()
        .zip(bundle.mount_sources())
        .enumerate()
        .filter(|(_, (mount, _))| {
            mount.typ().as_deref() == Some("bind")
                || mount
                    .options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind")
        })
        .filter_map(|(i, (_, source))| source.clone().map(|s| (i, s)))
        .collect()
}

/// Ok when `source` is inside one of `allowed`, as written (cleaned of `.` and `..`) and
/// with its symbolic links resolved: a link under an allowed directory that points out
/// of it is outside. Err carries the real path when it differs.
fn inside(source: &Path, allowed: &[PathBuf]) -> std::result::Result<(), Option<PathBuf>> {
    let within = |p: &Path| allowed.iter().any(|dir| p.starts_with(clean(dir)));
    let written = clean(source);
    let real = std::fs::canonicalize(source).ok();
    let real_ok = real.as_deref().is_none_or(within);
    if written.is_absolute() && within(&written) && real_ok {
        Ok(())
    } else {
        Err(real.filter(|r| *r != written))
    }
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
        // A prefix of a name is not a parent directory.
        let (_d, sibling) = bundle(mount(Path::new(&format!("{}x", allowed.path().display()))));
        assert!(check(&p, &sibling).contains("is outside"));
    }
}
