//! The `[security]` table of the config file: how far a container's own metadata
//! (config.json, which images and orchestrators write) may change how the host treats it.
//!
//! - `annotation_backends`: the backends the `io.proxcage.backend` annotation may select.
//!   Unset: any backend proxcage has. `[]`: the annotation may select none (routing is
//!   then the operator's `[[route]]` rules and `default_backend` alone).
//! - `pct_bind_sources`: host directories whose contents bind mounts of containers on the
//!   pct backend may use as sources (the CT's `mpN`). Unset: any host path.
//!
//! What needs no key because proxcage never does it: raw LXC keys from annotations (no
//! annotation is translated into LXC configuration) and privileged CTs (the pct backend
//! always creates CTs with `--unprivileged 1`).

use std::fmt;
use std::path::{Path, PathBuf};

use proxcage_core::{ContainerId, Error, Reason, Result, BACKEND_ANNOTATION};
use proxcage_oci::Bundle;
use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecurityPolicy {
    /// Backends the `io.proxcage.backend` annotation may select; `None`: all.
    #[serde(default)]
    pub annotation_backends: Option<Vec<String>>,
    /// Host directories bind-mount sources of pct containers must be in; `None`: any.
    #[serde(default)]
    pub pct_bind_sources: Option<Vec<PathBuf>>,
}

/// A bundle or a routing choice the policy refuses.
#[derive(Debug)]
pub struct PolicyViolation {
    id: ContainerId,
    what: String,
    why: String,
    fix: String,
}

impl fmt::Display for PolicyViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "container {}: {} {}: {}",
            self.id, self.what, self.why, self.fix
        )
    }
}

impl std::error::Error for PolicyViolation {}

impl SecurityPolicy {
    /// Checks the config file's own values: backend names must exist, source directories
    /// must be absolute.
    pub fn validate(&self, backends: &[&str], origin: &Path) -> Result<()> {
        for name in self.annotation_backends.iter().flatten() {
            if !backends.contains(&name.as_str()) {
                return Err(Error::UnknownBackend {
                    name: name.clone(),
                    context: format!(
                        "in [security] annotation_backends of {} is not a backend proxcage has",
                        origin.display()
                    ),
                    available: backends.iter().map(|b| b.to_string()).collect(),
                });
            }
        }
        for dir in self.pct_bind_sources.iter().flatten() {
            if !dir.is_absolute() {
                return Err(Error::Config {
                    path: origin.to_path_buf(),
                    message: format!(
                        "[security] pct_bind_sources: {:?} is not an absolute path",
                        dir.display()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Checks a new container against the policy, once its backend is chosen.
    pub fn check(
        &self,
        id: &ContainerId,
        bundle: &Bundle,
        backend: &str,
        reason: &Reason,
        origin: &Path,
    ) -> Result<()> {
        let violation = |what: String, why: String, fix: String| {
            Error::Input(Box::new(PolicyViolation {
                id: id.clone(),
                what,
                why,
                fix,
            }))
        };
        if let (Reason::Annotation, Some(allowed)) = (reason, &self.annotation_backends) {
            if !allowed.iter().any(|b| b == backend) {
                return Err(violation(
                    format!("the annotation {BACKEND_ANNOTATION}={backend:?} in {}", bundle.config_path().display()),
                    format!("selects a backend the [security] policy of {} does not let annotations select", origin.display()),
                    format!("annotation_backends allows {}; remove the annotation, or route the container with a [[route]] rule", list(allowed)),
                ));
            }
        }
        if let (proxcage_backend_pct::NAME, Some(allowed)) = (backend, &self.pct_bind_sources) {
            for (index, source) in bind_sources(bundle) {
                if let Err(real) = inside(&source, allowed) {
                    let shown = match real {
                        Some(real) => format!("{} (really {})", source.display(), real.display()),
                        None => source.display().to_string(),
                    };
                    return Err(violation(
                        format!("mounts[{index}].source {shown} in {}", bundle.config_path().display()),
                        format!("is outside the host directories the [security] policy of {} lets pct containers bind-mount", origin.display()),
                        format!("pct_bind_sources allows {}", list(allowed)),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn list<T: fmt::Debug>(items: &[T]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items
            .iter()
            .map(|i| format!("{i:?}"))
            .collect::<Vec<_>>()
            .join(", ")
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

    fn policy(text: &str) -> SecurityPolicy {
        toml::from_str(text).unwrap()
    }

    fn id() -> ContainerId {
        ContainerId::new("c1").unwrap()
    }

    fn check(p: &SecurityPolicy, b: &Bundle, backend: &str, reason: Reason) -> String {
        match p.check(&id(), b, backend, &reason, Path::new(ORIGIN)) {
            Ok(()) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_default_policy_allows_what_proxcage_allowed_before() {
        let (_d, b) = bundle(serde_json::json!({
            "annotations": {"io.proxcage.backend": "pct"},
            "mounts": [{"destination": "/etc2", "type": "bind", "source": "/etc"}],
        }));
        let p = SecurityPolicy::default();
        assert_eq!(check(&p, &b, "pct", Reason::Annotation), "ok");
    }

    #[test]
    fn the_annotation_may_select_only_the_allowed_backends() {
        let (dir, b) = bundle(serde_json::json!({"annotations": {"io.proxcage.backend": "pct"}}));
        let p = policy("annotation_backends = [\"runc\", \"crun\"]");
        assert_eq!(
            check(&p, &b, "pct", Reason::Annotation),
            format!(
                "container c1: the annotation io.proxcage.backend=\"pct\" in {}/config.json selects a backend the [security] policy of {ORIGIN} does not let annotations select: annotation_backends allows \"runc\", \"crun\"; remove the annotation, or route the container with a [[route]] rule",
                dir.path().display()
            )
        );
        assert_eq!(check(&p, &b, "crun", Reason::Annotation), "ok");
        // A rule or the default may still choose pct: the operator wrote those.
        assert_eq!(check(&p, &b, "pct", Reason::Rule(1)), "ok");
        assert_eq!(check(&p, &b, "pct", Reason::Default), "ok");
        let none = policy("annotation_backends = []");
        assert!(check(&none, &b, "runc", Reason::Annotation).contains("allows none"));
    }

    #[test]
    fn pct_bind_sources_must_be_inside_the_allowed_directories() {
        let allowed = tempfile::tempdir().unwrap();
        fs::create_dir(allowed.path().join("data")).unwrap();
        std::os::unix::fs::symlink("/etc", allowed.path().join("sneaky")).unwrap();
        let p = SecurityPolicy {
            annotation_backends: None,
            pct_bind_sources: Some(vec![allowed.path().to_path_buf()]),
        };
        let mount = |source: &Path| {
            serde_json::json!({"mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/d", "type": "none", "source": source, "options": ["rbind", "ro"]},
            ]})
        };
        let (_d, ok) = bundle(mount(&allowed.path().join("data")));
        assert_eq!(check(&p, &ok, "pct", Reason::Default), "ok");

        let (dir, etc) = bundle(mount(Path::new("/etc")));
        assert_eq!(
            check(&p, &etc, "pct", Reason::Default),
            format!(
                "container c1: mounts[1].source /etc in {}/config.json is outside the host directories the [security] policy of {ORIGIN} lets pct containers bind-mount: pct_bind_sources allows {:?}",
                dir.path().display(),
                allowed.path()
            )
        );
        // The other backends are not restricted by this key.
        assert_eq!(check(&p, &etc, "runc", Reason::Default), "ok");

        // `..` and links out of an allowed directory are outside.
        let (_d, up) = bundle(mount(&allowed.path().join("data/../../etc")));
        assert!(check(&p, &up, "pct", Reason::Default).contains("is outside"));
        let (_d, link) = bundle(mount(&allowed.path().join("sneaky")));
        let err = check(&p, &link, "pct", Reason::Default);
        assert!(err.contains("(really /etc)"), "{err}");
        // A prefix of a name is not a parent directory.
        let (_d, sibling) = bundle(mount(Path::new(&format!("{}x", allowed.path().display()))));
        assert!(check(&p, &sibling, "pct", Reason::Default).contains("is outside"));
    }

    #[test]
    fn the_policy_itself_is_checked() {
        let origin = Path::new(ORIGIN);
        let backends = ["runc", "crun", "pct"];
        assert!(policy("annotation_backends = [\"kata\"]")
            .validate(&backends, origin)
            .unwrap_err()
            .to_string()
            .contains("kata"));
        assert!(policy("pct_bind_sources = [\"srv\"]")
            .validate(&backends, origin)
            .unwrap_err()
            .to_string()
            .contains("\"srv\" is not an absolute path"));
        let err = toml::from_str::<SecurityPolicy>("raw_lxc_keys = true").unwrap_err();
        assert!(err.to_string().contains("raw_lxc_keys"), "{err}");
    }
}
