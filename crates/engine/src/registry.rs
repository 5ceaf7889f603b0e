//! The backends proxcage can route to. Each backend crate gives its name, its settings
//! type (read from its `[backends.NAME]` table) and a constructor; [`Registry::builtin`]
//! registers proxcage's own with one line each, and an embedder adds its own with
//! [`Registry::with`].

use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use proxcage_core::Result;
use proxcage_delegate::CallerFlags;
use proxcage_store::Backend;
use serde::de::DeserializeOwned;

use crate::security::SecurityPolicy;

/// What a backend's constructor gets besides its settings.
#[derive(Clone, Copy, Debug)]
pub struct BackendEnv<'a> {
    root: &'a Path,
    flags: &'a CallerFlags,
    security: &'a SecurityPolicy,
    origin: &'a Path,
}

impl<'a> BackendEnv<'a> {
    /// `root`: the backend's own state directory (`<root>/backends/<name>`); `origin`: the
    /// config file `security` comes from.
    pub fn new(
        root: &'a Path,
        flags: &'a CallerFlags,
        security: &'a SecurityPolicy,
        origin: &'a Path,
    ) -> Self {
        BackendEnv {
            root,
            flags,
            security,
            origin,
        }
    }

    /// The backend's own state directory.
    pub fn root(&self) -> PathBuf {
        self.root.to_path_buf()
    }

    /// The global flags of the caller (runc's `--systemd-cgroup`, `--rootless`, `--debug`).
    pub fn flags(&self) -> &CallerFlags {
        self.flags
    }

    /// The config file's `[security]` table.
    pub fn security(&self) -> &SecurityPolicy {
        self.security
    }

    /// The config file the settings and the policy come from, for messages.
    pub fn origin(&self) -> &Path {
        self.origin
    }
}

/// One backend as the registry knows it.
trait Kind: Send + Sync {
    fn name(&self) -> &'static str;
    /// Whether `table` is valid `[backends.NAME]` settings; the error names the problem.
    fn check(&self, table: &toml::Value) -> std::result::Result<(), String>;
    fn build(
        &self,
        table: Option<&toml::Value>,
        env: &BackendEnv<'_>,
        origin: &Path,
    ) -> Result<Box<dyn Backend>>;
}

struct Registered<S, F> {
    name: &'static str,
    build: F,
    settings: PhantomData<fn() -> S>,
}

impl<S, B, F> Kind for Registered<S, F>
where
    S: DeserializeOwned + Default,
    B: Backend + 'static,
    F: Fn(&S, &BackendEnv<'_>) -> Result<B> + Send + Sync,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn check(&self, table: &toml::Value) -> std::result::Result<(), String> {
        settings::<S>(self.name, Some(table)).map(drop)
    }

    fn build(
        &self,
        table: Option<&toml::Value>,
        env: &BackendEnv<'_>,
        origin: &Path,
    ) -> Result<Box<dyn Backend>> {
        let settings =
            settings::<S>(self.name, table).map_err(|message| proxcage_core::Error::Config {
                path: origin.to_path_buf(),
                message,
            })?;
        Ok(Box::new((self.build)(&settings, env)?))
    }
}

fn settings<S: DeserializeOwned + Default>(
    name: &str,
    table: Option<&toml::Value>,
) -> std::result::Result<S, String> {
    match table {
        None => Ok(S::default()),
        Some(table) => table.clone().try_into().map_err(|e: toml::de::Error| {
            format!("[backends.{name}]: {}", e.to_string().trim_end())
        }),
    }
}

/// The backends an [`Engine`](crate::Engine) can route to, by name.
pub struct Registry {
    kinds: Vec<Box<dyn Kind>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Registry {
    /// A registry with no backend.
    pub fn empty() -> Self {
        Registry { kinds: Vec::new() }
    }

    /// proxcage's own backends: runc, crun, pct and jail; crun and pct on Linux only.
    pub fn builtin() -> Self {
        use proxcage_backend_jail as jail;
        use proxcage_backend_runc as runc;
        let registry =
            Registry::empty().with(runc::NAME, |s, env| runc::runc(s, env.root(), env.flags()));
        #[cfg(target_os = "linux")]
        let registry = {
            use proxcage_backend_crun as crun;
            use proxcage_backend_pct as pct;
            registry
                .with(crun::NAME, |s, env| crun::crun(s, env.root(), env.flags()))
                .with(pct::NAME, |s, env| {
                    let sources = env.security().pct_bind_sources.clone();
                    pct::pct(s, env.root(), pct::BindSources::new(sources, env.origin()))
                })
        };
        registry.with(jail::NAME, |s, env| {
            jail::jail(s, env.root(), env.flags(), env.origin())
        })
    }

    /// Adds backend `name`, whose settings `S` are read from `[backends.NAME]` (defaults
    /// without one) and handed to `build` with the backend's environment. A backend of the
    /// same name registered before is replaced.
    pub fn with<S, B, F>(mut self, name: &'static str, build: F) -> Self
    where
        S: DeserializeOwned + Default + 'static,
        B: Backend + 'static,
        F: Fn(&S, &BackendEnv<'_>) -> Result<B> + Send + Sync + 'static,
    {
        self.kinds.retain(|k| k.name() != name);
        self.kinds.push(Box::new(Registered {
            name,
            build,
            settings: PhantomData,
        }));
        self
    }

    /// The registered names, in registration order.
    pub fn names(&self) -> Vec<&'static str> {
        self.kinds.iter().map(|k| k.name()).collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.kinds.iter().any(|k| k.name() == name)
    }

    pub(crate) fn check_settings(
        &self,
        name: &str,
        table: &toml::Value,
    ) -> std::result::Result<(), String> {
        match self.kinds.iter().find(|k| k.name() == name) {
            Some(kind) => kind.check(table),
            None => Err(format!(
                "[backends.{name}]: {name:?} is not a backend proxcage has ({})",
                self.names().join(", ")
            )),
        }
    }

    /// Backend `name` built from `table` (of the config file `origin`); `None` when no
    /// backend has that name.
    pub(crate) fn build(
        &self,
        name: &str,
        table: Option<&toml::Value>,
        env: &BackendEnv<'_>,
        origin: &Path,
    ) -> Option<Result<Box<dyn Backend>>> {
        self.kinds
            .iter()
            .find(|k| k.name() == name)
            .map(|kind| kind.build(table, env, origin))
    }
}
