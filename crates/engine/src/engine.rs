//! The engine: the config, the registry of backends, the store of records, and what ties
//! them together for every command about a container.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use proxcage_core::{ContainerId, Error, Result, State, Status};
use proxcage_delegate::CallerFlags;
use proxcage_store::{health, Backend, ContainerLock, Record, StateStore};

use crate::config::Config;
use crate::registry::{BackendEnv, Registry};

/// Routes containers to backends, keeps a record of each, and recovers from creates that
/// died midway. It implements [`proxcage_core::Runtime`] itself: a caller drives it
/// exactly as it would drive one backend.
pub struct Engine {
    pub(crate) config: Config,
    pub(crate) registry: Registry,
    pub(crate) store: StateStore,
    flags: CallerFlags,
    command_hint: String,
    pub(crate) roll_back_on_signals: bool,
    backends: Mutex<HashMap<String, Arc<dyn Backend>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("root", &self.store.root())
            .field("config", &self.config.path)
            .field("backends", &self.registry)
            .finish()
    }
}

/// How to build an [`Engine`]: [`Engine::builder`].
#[derive(Debug)]
pub struct EngineBuilder {
    root: PathBuf,
    config: Option<Config>,
    registry: Option<Registry>,
    flags: CallerFlags,
    command_hint: String,
    roll_back_on_signals: bool,
}

impl EngineBuilder {
    /// The configuration (default: [`Config::default`]: every container to runc).
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// The backends (default: [`Registry::builtin`]).
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The caller's global flags that backends which drive a runc-CLI binary pass on.
    pub fn flags(mut self, flags: CallerFlags) -> Self {
        self.flags = flags;
        self
    }

    /// How messages name the command to run to clean something up (default `proxcage`):
    /// the CLI gives its own invocation with `--root` and `--config`.
    pub fn command_hint(mut self, hint: impl Into<String>) -> Self {
        self.command_hint = hint.into();
        self
    }

    /// With `true`, `create` and `run` take over SIGINT, SIGTERM and SIGHUP while they
    /// run: a signal then lets the backend step finish, rolls the create back and fails
    /// it, instead of leaving a half-made container. This changes the process's signal
    /// dispositions for that time (they are put back after); off by default, on in the
    /// `proxcage` binary. Embedders with signal handling of their own leave it off.
    pub fn roll_back_on_signals(mut self, on: bool) -> Self {
        self.roll_back_on_signals = on;
        self
    }

    /// Opens (and creates if needed) the state store under the root.
    pub fn build(self) -> Result<Engine> {
        let registry = self.registry.unwrap_or_else(Registry::builtin);
        Ok(Engine {
            config: self.config.unwrap_or_default(),
            registry,
            store: StateStore::open(&self.root)?,
            flags: self.flags,
            command_hint: self.command_hint,
            roll_back_on_signals: self.roll_back_on_signals,
            backends: Mutex::new(HashMap::new()),
        })
    }
}

impl Engine {
    /// An engine with its records under `root` (runc's rule for the default is the
    /// caller's: `/run/proxcage` for root).
    pub fn builder(root: impl Into<PathBuf>) -> EngineBuilder {
        EngineBuilder {
            root: root.into(),
            config: None,
            registry: None,
            flags: CallerFlags::default(),
            command_hint: "proxcage".into(),
            roll_back_on_signals: false,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn store(&self) -> &StateStore {
        &self.store
    }

    /// Backend `name`, set up from its `[backends.NAME]` settings once per engine.
    pub fn backend(&self, name: &str) -> Result<Arc<dyn Backend>> {
        let mut built = self.backends.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(backend) = built.get(name) {
            return Ok(backend.clone());
        }
        let root = self.store.backend_dir(name)?;
        let env = BackendEnv::new(&root, &self.flags, &self.config.security, &self.config.path);
        let backend: Arc<dyn Backend> = self
            .registry
            .build(name, self.config.table(name), &env, &self.config.path)
            .ok_or_else(|| Error::UnknownBackend {
                name: name.to_string(),
                context: "is recorded for a container but is not a backend proxcage has".into(),
                available: self.available(),
            })??
            .into();
        built.insert(name.to_string(), backend.clone());
        Ok(backend)
    }

    pub(crate) fn available(&self) -> Vec<String> {
        self.registry
            .names()
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// The record of `id`, or runc's "does not exist".
    pub fn record(&self, id: &ContainerId) -> Result<Record> {
        self.store
            .read(id)?
            .ok_or_else(|| Error::NotFound { id: id.clone() })
    }

    /// The lock of `id`, its record read under the lock, and the backend it names; runc's
    /// "does not exist" when the container is gone (also when a delete removed it while
    /// we waited for the lock). A create that died midway is an error that says how to
    /// clean it up.
    pub(crate) fn locked_backend(
        &self,
        id: &ContainerId,
    ) -> Result<(ContainerLock, Arc<dyn Backend>)> {
        let not_found = || Error::NotFound { id: id.clone() };
        let lock = self.store.lock_existing(id)?.ok_or_else(not_found)?;
        let record = lock.record()?.ok_or_else(not_found)?;
        self.refuse_interrupted(&record)?;
        let backend = self.backend(record.backend())?;
        Ok((lock, backend))
    }

    /// The record of `id` and the backend it names, read without the lock. A create that
    /// died midway is an error that says how to clean it up.
    pub(crate) fn recorded_backend(&self, id: &ContainerId) -> Result<(Record, Arc<dyn Backend>)> {
        let mut record = self.record(id)?;
        // Read without the lock, a `creating` record may be one whose creator finishes
        // (and exits) any moment: it is judged once, and a creator alive then is a create
        // in progress, even if it is gone by the time we answer. One that looked gone is
        // judged again under the lock, which a live create holds: then it is certain.
        if health::create_interrupted(&record) {
            let not_found = || Error::NotFound { id: id.clone() };
            let lock = self.store.lock_existing(id)?.ok_or_else(not_found)?;
            record = lock.record()?.ok_or_else(not_found)?;
            self.refuse_interrupted(&record)?;
        }
        let backend = self.backend(record.backend())?;
        Ok((record, backend))
    }

    fn refuse_interrupted(&self, record: &Record) -> Result<()> {
        if !health::create_interrupted(record) {
            return Ok(());
        }
        Err(Error::Conflict {
            id: record.id().clone(),
            message: format!(
                "its create was interrupted (proxcage process {} is gone): '{cmd} delete --force {id}' or '{cmd} health --repair' cleans it up",
                record.creator_pid().unwrap_or(0),
                cmd = self.command_hint,
                id = record.id(),
            ),
        })
    }
}

/// The state of a container whose create has not reached its backend yet.
pub(crate) fn creating_state(record: &Record) -> State {
    State {
        oci_version: proxcage_core::OCI_VERSION.to_string(),
        id: record.id().to_string(),
        pid: 0,
        status: Status::Creating,
        bundle: record.bundle().to_path_buf(),
        rootfs: PathBuf::new(),
        created: record.created().to_string(),
        owner: String::new(),
        annotations: Default::default(),
    }
}
