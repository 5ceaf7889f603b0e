//! Which backend runs a container: the `io.proxcage.backend` annotation, then the first
//! matching `[[route]]` rule, then `default_backend`. The choice is made once, at create,
//! and recorded; later commands follow the record.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use proxcage_core::{ContainerId, Error, Result, BACKEND_ANNOTATION};

/// One `[[route]]` rule of the config file. Every condition given must match; a rule with
/// no condition matches everything.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// The backend the rule sends containers to.
    pub backend: String,
    /// A glob (`*`, `?`, `[a-z]`) over the container id.
    #[serde(default)]
    pub id: Option<String>,
    /// Annotation name -> glob over its value; the annotation must be present.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// Why a backend was chosen, for logs and `--debug`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    Annotation,
    /// The 1-based position of the rule in the config file.
    Rule(usize),
    Default,
    /// A container of a pod follows its sandbox (the sandbox's id).
    Pod(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Annotation => write!(f, "annotation {BACKEND_ANNOTATION}"),
            Reason::Rule(n) => write!(f, "[[route]] rule {n}"),
            Reason::Default => f.write_str("default_backend"),
            Reason::Pod(sandbox) => write!(f, "the backend of its pod's sandbox {sandbox}"),
        }
    }
}

#[derive(Debug)]
struct CompiledRule {
    backend: String,
    id: Option<glob::Pattern>,
    annotations: Vec<(String, glob::Pattern)>,
}

/// Routes containers to backends by name.
#[derive(Debug)]
pub struct Router {
    default_backend: String,
    rules: Vec<CompiledRule>,
    available: Vec<String>,
}

impl Router {
    /// Checks every backend name and glob against `available` (the backends this build
    /// has). `origin` names where the rules came from (the config file) for errors.
    pub fn new(
        default_backend: &str,
        rules: &[RouteRule],
        available: &[&str],
        origin: &std::path::Path,
    ) -> Result<Self> {
        let available: Vec<String> = available.iter().map(|s| s.to_string()).collect();
        let known = |name: &str, context: String| -> Result<String> {
            if available.iter().any(|a| a == name) {
                Ok(name.to_string())
            } else {
                Err(Error::UnknownBackend {
                    name: name.to_string(),
                    context: format!(
                        "in {context} of {} is not a backend proxcage has",
                        origin.display()
                    ),
                    available: available.clone(),
                })
            }
        };
        let default_backend = known(default_backend, "default_backend".into())?;
        let pattern = |glob: &str, context: String| {
            glob::Pattern::new(glob).map_err(|e| Error::Config {
                path: origin.to_path_buf(),
                message: format!("{context}: invalid glob {glob:?}: {e}"),
            })
        };
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                let n = i + 1;
                Ok(CompiledRule {
                    backend: known(&rule.backend, format!("[[route]] rule {n}"))?,
                    id: rule
                        .id
                        .as_deref()
                        .map(|g| pattern(g, format!("[[route]] rule {n}, id")))
                        .transpose()?,
                    annotations: rule
                        .annotations
                        .iter()
                        .map(|(k, g)| {
                            Ok((
                                k.clone(),
                                pattern(g, format!("[[route]] rule {n}, annotation {k}"))?,
                            ))
                        })
                        .collect::<Result<_>>()?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Router {
            default_backend,
            rules,
            available,
        })
    }

    /// The backend for a new container.
    pub fn choose(
        &self,
        id: &ContainerId,
        annotations: &BTreeMap<String, String>,
    ) -> Result<(String, Reason)> {
        if let Some(name) = annotations.get(BACKEND_ANNOTATION) {
            if !self.available.iter().any(|a| a == name) {
                return Err(Error::UnknownBackend {
                    name: name.clone(),
                    context: format!("named by the annotation {BACKEND_ANNOTATION} of container {id} is not a backend proxcage has"),
                    available: self.available.clone(),
                });
            }
            return Ok((name.clone(), Reason::Annotation));
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let id_matches = rule.id.as_ref().is_none_or(|p| p.matches(id.as_str()));
            let annotations_match = rule
                .annotations
                .iter()
                .all(|(k, p)| annotations.get(k).is_some_and(|v| p.matches(v)));
            if id_matches && annotations_match {
                return Ok((rule.backend.clone(), Reason::Rule(i + 1)));
            }
        }
        Ok((self.default_backend.clone(), Reason::Default))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn router(rules: &[RouteRule]) -> Router {
        Router::new(
            "runc",
            rules,
            &["runc", "crun", "pct", "jail"],
            Path::new("/etc/proxcage/config.toml"),
        )
        .unwrap()
    }

    fn choose(r: &Router, id: &str, ann: &[(&str, &str)]) -> (String, Reason) {
        let ann = ann
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        r.choose(&ContainerId::new(id).unwrap(), &ann).unwrap()
    }

    fn rule(backend: &str, id: Option<&str>, ann: &[(&str, &str)]) -> RouteRule {
        RouteRule {
            backend: backend.into(),
            id: id.map(Into::into),
            annotations: ann
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn annotation_beats_rule_beats_default() {
        let r = router(&[
            rule("crun", Some("light-*"), &[]),
            rule("pct", None, &[("tier", "prod*")]),
            rule("jail", None, &[("org.freebsd.jail.vnet", "*")]),
        ]);
        assert_eq!(
            choose(&r, "light-1", &[(BACKEND_ANNOTATION, "runc")]),
            ("runc".into(), Reason::Annotation)
        );
        assert_eq!(choose(&r, "light-1", &[]), ("crun".into(), Reason::Rule(1)));
        assert_eq!(
            choose(&r, "web", &[("tier", "production")]),
            ("pct".into(), Reason::Rule(2))
        );
        assert_eq!(
            choose(&r, "web", &[("tier", "dev")]),
            ("runc".into(), Reason::Default)
        );
        assert_eq!(choose(&r, "web", &[]), ("runc".into(), Reason::Default));
        assert_eq!(
            choose(&r, "bsd", &[("org.freebsd.jail.vnet", "new")]),
            ("jail".into(), Reason::Rule(3))
        );
        assert_eq!(
            choose(&r, "light-1", &[(BACKEND_ANNOTATION, "jail")]),
            ("jail".into(), Reason::Annotation)
        );
    }

    #[test]
    fn rules_apply_in_file_order() {
        let r = router(&[rule("crun", Some("*"), &[]), rule("pct", Some("a*"), &[])]);
        assert_eq!(choose(&r, "abc", &[]).0, "crun");
    }

    #[test]
    fn unknown_backends_are_named() {
        let err = Router::new("kata", &[], &["runc"], Path::new("/c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"kata\"") && err.contains("default_backend") && err.contains("runc"),
            "{err}"
        );
        let err = Router::new(
            "runc",
            &[rule("nope", None, &[])],
            &["runc"],
            Path::new("/c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("[[route]] rule 1"), "{err}");
        let r = router(&[]);
        let ann = [(BACKEND_ANNOTATION.to_string(), "kata".to_string())]
            .into_iter()
            .collect();
        let err = r
            .choose(&ContainerId::new("x").unwrap(), &ann)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(BACKEND_ANNOTATION) && err.contains("kata"),
            "{err}"
        );
    }

    #[test]
    fn bad_globs_are_config_errors() {
        let err = Router::new(
            "runc",
            &[rule("runc", Some("[a"), &[])],
            &["runc"],
            Path::new("/c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("/c.toml") && err.contains("invalid glob"),
            "{err}"
        );
    }

    #[test]
    fn the_reason_names_what_chose_the_backend() {
        let r = router(&[rule("crun", Some("light-*"), &[])]);
        let (_, reason) = choose(&r, "light-1", &[]);
        assert_eq!(reason.to_string(), "[[route]] rule 1");
        let (_, reason) = choose(&r, "heavy-1", &[]);
        assert_eq!(reason.to_string(), "default_backend");
        let (_, reason) = choose(&r, "heavy-1", &[(BACKEND_ANNOTATION, "pct")]);
        assert_eq!(reason.to_string(), "annotation io.proxcage.backend");
    }
}
