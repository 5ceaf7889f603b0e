//! The `[security]` table of the config file: how far a container's own metadata
//! (config.json, which images and orchestrators write) may change how the host treats it.
//!
//! - `annotation_backends`: the backends the `io.proxcage.backend` annotation may select.
//!   Unset: any backend proxcage has. `[]`: the annotation may select none (routing is
//!   then the operator's `[[route]]` rules and `default_backend` alone).
//! - `pct_bind_sources`: host directories whose contents bind mounts of containers on the
//!   pct backend may use as sources (the CT's `mpN`). Unset: any host path.
//! - `jail_annotations`: the `org.freebsd.*` annotations (jail parameters ocijail sets
//!   from them: `org.freebsd.jail.vnet`, `org.freebsd.jail.allow.mlock`,
//!   `org.freebsd.parentJail`, ...) a container on the jail backend may carry. Unset: any.
//!   `[]`: none. Like `annotation_backends`, checked before anything is made.
//!
//! What needs no key because proxcage never does it: raw LXC keys from annotations (no
//! annotation is translated into LXC configuration) and privileged CTs (the pct backend
//! always creates CTs with `--unprivileged 1`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proxcage_core::error::quoted_list;
use proxcage_core::{ContainerId, Error, Result, BACKEND_ANNOTATION};
use serde::Deserialize;

use crate::router::Reason;

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecurityPolicy {
    /// Backends the `io.proxcage.backend` annotation may select; `None`: all.
    #[serde(default)]
    pub annotation_backends: Option<Vec<String>>,
    /// Host directories bind-mount sources of pct containers must be in; `None`: any.
    #[serde(default)]
    pub pct_bind_sources: Option<Vec<PathBuf>>,
    /// `org.freebsd.*` annotations a container on the jail backend may carry; `None`: any.
    #[serde(default)]
    pub jail_annotations: Option<Vec<String>>,
}

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
        let prefix = proxcage_backend_jail::ANNOTATION_PREFIX;
        if let Some(name) = self
            .jail_annotations
            .iter()
            .flatten()
            .find(|name| !name.starts_with(prefix))
        {
            return Err(Error::Config {
                path: origin.to_path_buf(),
                message: format!(
                    "[security] jail_annotations: {name:?} is not an annotation ocijail reads (they start with {prefix:?})"
                ),
            });
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

    /// Checks the routing choice for container `id`, whose config.json is `config_json`
    /// with `annotations`: an annotation may select only the backends
    /// `annotation_backends` allows, and a container on the jail backend may carry only
    /// the `org.freebsd.*` annotations `jail_annotations` allows. The pct backend checks
    /// `pct_bind_sources` itself, on the bundle it creates the CT from.
    pub fn check(
        &self,
        id: &ContainerId,
        config_json: &Path,
        annotations: &BTreeMap<String, String>,
        backend: &str,
        reason: &Reason,
        origin: &Path,
    ) -> Result<()> {
        if let (Reason::Annotation, Some(allowed)) = (reason, &self.annotation_backends) {
            if !allowed.iter().any(|b| b == backend) {
                return Err(Error::Policy {
                    id: id.clone(),
                    what: format!("the annotation {BACKEND_ANNOTATION}={backend:?} in {}", config_json.display()),
                    why: format!("selects a backend the [security] policy of {} does not let annotations select", origin.display()),
                    fix: format!("annotation_backends allows {}; remove the annotation, or route the container with a [[route]] rule", quoted_list(allowed)),
                });
            }
        }
        if backend == proxcage_backend_jail::NAME {
            self.check_jail_annotations(id, config_json, annotations, origin)?;
        }
        Ok(())
    }

    /// The `org.freebsd.*` annotations of a container on the jail backend: only those
    /// `jail_annotations` allows.
    fn check_jail_annotations(
        &self,
        id: &ContainerId,
        config_json: &Path,
        annotations: &BTreeMap<String, String>,
        origin: &Path,
    ) -> Result<()> {
        let Some(allowed) = &self.jail_annotations else {
            return Ok(());
        };
        let refused = annotations.iter().find(|(name, _)| {
            name.starts_with(proxcage_backend_jail::ANNOTATION_PREFIX)
                && !allowed.iter().any(|a| a == *name)
        });
        match refused {
            None => Ok(()),
            Some((name, value)) => Err(Error::Policy {
                id: id.clone(),
                what: format!("the annotation {name}={value:?} in {}", config_json.display()),
                why: format!("sets a jail parameter the [security] policy of {} does not let annotations set", origin.display()),
                fix: format!("jail_annotations allows {}; remove the annotation, or add it to jail_annotations", quoted_list(allowed)),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proxcage_oci::Bundle;
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
        let annotations = b.spec().annotations().clone().unwrap_or_default();
        let annotations = annotations.into_iter().collect();
        match p.check(
            &id(),
            b.config_path(),
            &annotations,
            backend,
            &reason,
            Path::new(ORIGIN),
        ) {
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
    fn jail_annotations_are_checked_for_containers_on_the_jail_backend_only() {
        let (dir, b) = bundle(serde_json::json!({"annotations": {
            "org.freebsd.jail.vnet": "new",
            "org.freebsd.jail.allow.mount": "true",
            "io.kubernetes.cri.sandbox-name": "x",
        }}));
        let p = policy("jail_annotations = [\"org.freebsd.jail.vnet\"]");
        assert_eq!(
            check(&p, &b, "jail", Reason::Rule(1)),
            format!(
                "container c1: the annotation org.freebsd.jail.allow.mount=\"true\" in {}/config.json sets a jail parameter the [security] policy of {ORIGIN} does not let annotations set: jail_annotations allows \"org.freebsd.jail.vnet\"; remove the annotation, or add it to jail_annotations",
                dir.path().display()
            )
        );
        // Whatever routed it there: the annotations are the bundle's own.
        assert!(check(&p, &b, "jail", Reason::Default).contains("allow.mount"));
        // Other backends do not read them.
        assert_eq!(check(&p, &b, "runc", Reason::Default), "ok");
        let both = policy(
            "jail_annotations = [\"org.freebsd.jail.vnet\", \"org.freebsd.jail.allow.mount\"]",
        );
        assert_eq!(check(&both, &b, "jail", Reason::Default), "ok");
        assert_eq!(
            check(&SecurityPolicy::default(), &b, "jail", Reason::Default),
            "ok"
        );
    }

    #[test]
    fn the_policy_itself_is_checked() {
        let origin = Path::new(ORIGIN);
        let backends = ["runc", "crun", "pct", "jail"];
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
        assert!(policy("jail_annotations = [\"vnet\"]")
            .validate(&backends, origin)
            .unwrap_err()
            .to_string()
            .contains("\"vnet\" is not an annotation ocijail reads"));
        let err = toml::from_str::<SecurityPolicy>("raw_lxc_keys = true").unwrap_err();
        assert!(err.to_string().contains("raw_lxc_keys"), "{err}");
    }
}
