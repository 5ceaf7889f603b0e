//! The config file: `--config`, else `$PROXCAGE_CONFIG`, else /etc/proxcage/config.toml.
//! A missing default file means built-in defaults; a file named explicitly must exist.
//! Unknown keys are errors that name the key.

use std::path::{Path, PathBuf};

use proxcage_backend_crun::CrunSettings;
use proxcage_backend_pct::PctSettings;
use proxcage_backend_runc::RuncSettings;
use proxcage_core::{Error, Result, RouteRule, Router};
use serde::Deserialize;

use crate::security::SecurityPolicy;

pub const DEFAULT_PATH: &str = "/etc/proxcage/config.toml";
pub const ENV: &str = "PROXCAGE_CONFIG";

/// The backends this build has.
pub const BACKENDS: &[&str] = &[
    proxcage_backend_runc::NAME,
    proxcage_backend_crun::NAME,
    proxcage_backend_pct::NAME,
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The backend for containers no annotation or rule routes elsewhere.
    #[serde(default = "default_backend")]
    pub default_backend: String,
    /// Ordered routing rules; the first match wins.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteRule>,
    #[serde(default)]
    pub backends: Backends,
    /// What a container's own metadata may change on the host.
    #[serde(default)]
    pub security: SecurityPolicy,
    /// Where the settings came from, for error messages.
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backends {
    #[serde(default)]
    pub runc: RuncSettings,
    #[serde(default)]
    pub crun: CrunSettings,
    #[serde(default)]
    pub pct: PctSettings,
}

fn default_backend() -> String {
    proxcage_backend_runc::NAME.to_string()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default_backend: default_backend(),
            routes: Vec::new(),
            backends: Backends::default(),
            security: SecurityPolicy::default(),
            path: PathBuf::from(DEFAULT_PATH),
        }
    }
}

impl Config {
    /// Loads the config named by `--config` or `$PROXCAGE_CONFIG`, or the default file.
    pub fn load(flag: Option<&Path>) -> Result<Config> {
        let explicit = flag.map(Path::to_path_buf).or_else(|| {
            std::env::var_os(ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        let path = explicit
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
                return Ok(Config::default());
            }
            Err(e) => return Err(Error::io("cannot read the config file", &path, e)),
        };
        Config::parse(&text, &path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let mut config: Config = toml::from_str(text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        config.path = path.to_path_buf();
        Ok(config)
    }

    pub fn router(&self) -> Result<Router> {
        self.security.validate(BACKENDS, &self.path)?;
        Router::new(&self.default_backend, &self.routes, BACKENDS, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_parses() {
        let text = r#"
default_backend = "crun"

[[route]]
backend = "runc"
id = "heavy-*"

[[route]]
backend = "crun"
annotations = { "io.kubernetes.cri.sandbox-namespace" = "dev-*" }

[backends.runc]
binary = "/usr/sbin/runc"
timeout_secs = 30

[backends.crun]
cgroup_manager = "disabled"
private_cgroup2 = true
"#;
        let config = Config::parse(text, Path::new("/c.toml")).unwrap();
        assert_eq!(config.default_backend, "crun");
        assert_eq!(config.routes.len(), 2);
        assert_eq!(config.backends.runc.timeout_secs, Some(30));
        assert!(config.backends.crun.private_cgroup2);
        config.router().unwrap();
    }

    #[test]
    fn unknown_keys_are_named_with_the_file() {
        for (text, key) in [
            ("defualt_backend = \"runc\"", "defualt_backend"),
            ("[backends.pct]\nstorage = \"local\"", "storage"),
            ("[backends.kata]\nbinary = \"x\"", "kata"),
            ("[[route]]\nbackend = \"runc\"\nids = \"x\"", "ids"),
            ("[backends.crun]\nmanager = \"x\"", "manager"),
        ] {
            let err = Config::parse(text, Path::new("/etc/proxcage/config.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("/etc/proxcage/config.toml") && err.contains(key),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn an_unknown_default_backend_is_refused_when_routing() {
        let config = Config::parse("default_backend = \"kata\"", Path::new("/c.toml")).unwrap();
        let err = config.router().unwrap_err().to_string();
        assert!(
            err.contains("kata") && err.contains("runc, crun, pct"),
            "{err}"
        );
    }

    #[test]
    fn an_explicit_missing_file_is_an_error() {
        let err = Config::load(Some(Path::new("/nonexistent/proxcage.toml")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/proxcage.toml"), "{err}");
    }
}
