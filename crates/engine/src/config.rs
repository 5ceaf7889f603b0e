//! The config file: `--config`, else `$PROXCAGE_CONFIG`, else /etc/proxcage/config.toml.
//! A missing default file means built-in defaults; a file named explicitly must exist.
//! Unknown keys are errors that name the key and the file; each `[backends.NAME]` table
//! is checked against the settings of the backend registered under that name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proxcage_core::{Error, Result};
use serde::Deserialize;

use crate::registry::Registry;
use crate::router::{RouteRule, Router};
use crate::security::SecurityPolicy;

/// The config file without `--config` or `$PROXCAGE_CONFIG`; on FreeBSD, where
/// third-party software keeps its configuration under /usr/local/etc, that is where.
pub const DEFAULT_PATH: &str = if cfg!(target_os = "linux") {
    "/etc/proxcage/config.toml"
} else {
    "/usr/local/etc/proxcage/config.toml"
};
pub const ENV: &str = "PROXCAGE_CONFIG";

/// The backend containers go to when no annotation, rule or `default_backend` says
/// otherwise: runc on Linux, jails elsewhere (FreeBSD).
pub const DEFAULT_BACKEND: &str = if cfg!(target_os = "linux") {
    "runc"
} else {
    proxcage_backend_jail::NAME
};

/// proxcage's configuration: routing, the backends' settings, the security policy.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The backend for containers no annotation or rule routes elsewhere.
    #[serde(default = "default_backend")]
    pub default_backend: String,
    /// Ordered routing rules; the first match wins.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteRule>,
    /// `[backends.NAME]` tables, as written: each belongs to the backend registered as
    /// NAME, which reads its own settings from it ([`Config::settings`]).
    #[serde(default)]
    backends: BTreeMap<String, toml::Value>,
    /// What a container's own metadata may change on the host.
    #[serde(default)]
    pub security: SecurityPolicy,
    /// Where the settings came from, for error messages.
    #[serde(skip)]
    pub path: PathBuf,
    /// Whether `path` was read; false: the built-in defaults, the default file missing.
    #[serde(skip)]
    read: bool,
}

fn default_backend() -> String {
    DEFAULT_BACKEND.to_string()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default_backend: default_backend(),
            routes: Vec::new(),
            backends: BTreeMap::new(),
            security: SecurityPolicy::default(),
            path: PathBuf::from(DEFAULT_PATH),
            read: false,
        }
    }
}

impl Config {
    /// Loads the config named by `flag` (`--config`) or `$PROXCAGE_CONFIG`, or the default
    /// file, and checks every `[backends.NAME]` table against `registry`.
    pub fn load(flag: Option<&Path>, registry: &Registry) -> Result<Config> {
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
        Config::parse(&text, &path, registry)
    }

    /// Parses `text`, the content of the config file `path`.
    pub fn parse(text: &str, path: &Path, registry: &Registry) -> Result<Config> {
        let mut config: Config = toml::from_str(text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            // toml's message is a snippet over several lines, pointing at the mistake;
            // the `--log` line escapes the newlines.
            message: e.to_string().trim_end().to_string(),
        })?;
        config.path = path.to_path_buf();
        config.read = true;
        for (name, table) in &config.backends {
            registry
                .check_settings(name, table)
                .map_err(|message| Error::Config {
                    path: path.to_path_buf(),
                    message,
                })?;
        }
        Ok(config)
    }

    /// Where the settings came from, for the operator: the file, or the built-in
    /// defaults when the default file does not exist.
    pub fn origin(&self) -> String {
        if self.read {
            self.path.display().to_string()
        } else {
            format!(
                "the built-in defaults ({} does not exist)",
                self.path.display()
            )
        }
    }

    /// The settings of backend `name` from its `[backends.NAME]` table (defaults when the
    /// file has none).
    pub fn settings<S: serde::de::DeserializeOwned + Default>(&self, name: &str) -> Result<S> {
        match self.backends.get(name) {
            None => Ok(S::default()),
            Some(table) => table.clone().try_into().map_err(|e| Error::Config {
                path: self.path.clone(),
                message: format!("[backends.{name}]: {}", e.to_string().trim_end()),
            }),
        }
    }

    /// The `[backends.NAME]` table as written, if the file has one.
    pub(crate) fn table(&self, name: &str) -> Option<&toml::Value> {
        self.backends.get(name)
    }

    /// The router of this config: every backend it names checked against `registry`.
    pub fn router(&self, registry: &Registry) -> Result<Router> {
        let names = registry.names();
        self.security.validate(&names, &self.path)?;
        Router::new(&self.default_backend, &self.routes, &names, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, path: &str) -> Result<Config> {
        Config::parse(text, Path::new(path), &Registry::builtin())
    }

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

[backends.jail]
binary = "/usr/local/bin/ocijail"
timeout_secs = 60
"#;
        let config = parse(text, "/c.toml").unwrap();
        assert_eq!(config.default_backend, "crun");
        assert_eq!(config.routes.len(), 2);
        let runc: proxcage_backend_runc::RuncSettings = config.settings("runc").unwrap();
        assert_eq!(runc.timeout_secs, Some(30));
        let crun: proxcage_backend_crun::CrunSettings = config.settings("crun").unwrap();
        assert!(crun.private_cgroup2);
        let jail: proxcage_backend_jail::JailSettings = config.settings("jail").unwrap();
        assert_eq!(jail.timeout_secs, Some(60));
        config.router(&Registry::builtin()).unwrap();
    }

    #[test]
    fn unknown_keys_are_named_with_the_file() {
        for (text, key) in [
            ("defualt_backend = \"runc\"", "defualt_backend"),
            ("[backends.pct]\nstorage = \"local\"", "storage"),
            ("[backends.kata]\nbinary = \"x\"", "kata"),
            ("[[route]]\nbackend = \"runc\"\nids = \"x\"", "ids"),
            ("[backends.crun]\nmanager = \"x\"", "manager"),
            ("[backends.jail]\ncgroup_manager = \"x\"", "cgroup_manager"),
        ] {
            let err = parse(text, "/etc/proxcage/config.toml")
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
        let config = parse("default_backend = \"kata\"", "/c.toml").unwrap();
        let err = config.router(&Registry::builtin()).unwrap_err().to_string();
        assert!(
            err.contains("kata") && err.contains("runc, crun, pct, jail"),
            "{err}"
        );
    }

    #[test]
    fn the_origin_is_the_file_read_or_the_built_in_defaults() {
        assert_eq!(parse("", "/c.toml").unwrap().origin(), "/c.toml");
        assert_eq!(
            Config::default().origin(),
            "the built-in defaults (/etc/proxcage/config.toml does not exist)"
        );
    }

    #[test]
    fn an_explicit_missing_file_is_an_error() {
        let err = Config::load(
            Some(Path::new("/nonexistent/proxcage.toml")),
            &Registry::builtin(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/nonexistent/proxcage.toml"), "{err}");
    }
}
