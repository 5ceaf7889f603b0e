//! What every command needs, built on first use: the root, the config, the store and the
//! backends. A command that needs no config (`spec`) reads none.

use proxcage_store::Backend;
use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use proxcage_backend_crun::crun;
use proxcage_backend_runc::runc;
use proxcage_core::{ContainerId, Error, Result, State, Status};
use proxcage_delegate::CallerFlags;
use proxcage_store::{Record, StateStore};

use crate::args::Global;
use crate::config::{Config, BACKENDS};

pub struct Ctx<'a> {
    pub global: &'a Global,
    config: OnceCell<Config>,
    store: OnceCell<StateStore>,
}

impl<'a> Ctx<'a> {
    pub fn new(global: &'a Global) -> Self {
        Ctx {
            global,
            config: OnceCell::new(),
            store: OnceCell::new(),
        }
    }

    /// `--root`, else runc's rule: /run/proxcage for root, $XDG_RUNTIME_DIR/proxcage for
    /// anyone else. podman calls some commands without --root, so this must not vary.
    pub fn root(&self) -> PathBuf {
        if let Some(root) = &self.global.root {
            return root.clone();
        }
        if nix::unistd::geteuid().is_root() {
            return PathBuf::from("/run/proxcage");
        }
        match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
            Some(dir) => Path::new(&dir).join("proxcage"),
            None => PathBuf::from(format!("/run/user/{}/proxcage", nix::unistd::geteuid())),
        }
    }

    pub fn config(&self) -> Result<&Config> {
        if let Some(config) = self.config.get() {
            return Ok(config);
        }
        let config = Config::load(self.global.config.as_deref())?;
        Ok(self.config.get_or_init(|| config))
    }

    pub fn store(&self) -> Result<&StateStore> {
        if let Some(store) = self.store.get() {
            return Ok(store);
        }
        let store = StateStore::open(self.root())?;
        Ok(self.store.get_or_init(|| store))
    }

    fn flags(&self) -> CallerFlags {
        CallerFlags {
            systemd_cgroup: self.global.systemd_cgroup,
            rootless: self.global.rootless.clone(),
            debug: self.global.debug,
        }
    }

    /// The backend called `name`, configured from the config file.
    pub fn backend(&self, name: &str) -> Result<Box<dyn Backend>> {
        let config = self.config()?;
        let root = self.store()?.backend_dir(name)?;
        let flags = self.flags();
        Ok(match name {
            proxcage_backend_runc::NAME => Box::new(runc(&config.backends.runc, root, &flags)?),
            proxcage_backend_crun::NAME => Box::new(crun(&config.backends.crun, root, &flags)?),
            proxcage_backend_pct::NAME => {
                Box::new(proxcage_backend_pct::pct(&config.backends.pct, root)?)
            }
            other => {
                return Err(Error::UnknownBackend {
                    name: other.to_string(),
                    context: "is recorded for a container but is not a backend proxcage has".into(),
                    available: BACKENDS.iter().map(|s| s.to_string()).collect(),
                })
            }
        })
    }

    /// `proxcage` with the `--root` and `--config` of this invocation, for commands that
    /// messages tell the operator to run.
    pub fn command_line(&self) -> String {
        let mut cmd = String::from("proxcage");
        if let Some(root) = &self.global.root {
            cmd.push_str(&format!(" --root {}", root.display()));
        }
        if let Some(config) = &self.global.config {
            cmd.push_str(&format!(" --config {}", config.display()));
        }
        cmd
    }

    /// The record of `id`, or runc's "does not exist".
    pub fn record(&self, id: &ContainerId) -> Result<Record> {
        self.store()?
            .read(id)?
            .ok_or_else(|| Error::NotFound { id: id.clone() })
    }

    /// The lock of `id`, its record read under the lock, and the backend it names; runc's
    /// "does not exist" when the container is gone (also when a delete removed it while
    /// we waited for the lock).
    pub fn locked_backend(
        &self,
        id: &ContainerId,
    ) -> Result<(proxcage_store::ContainerLock, Box<dyn Backend>)> {
        let not_found = || Error::NotFound { id: id.clone() };
        let lock = self.store()?.lock_existing(id)?.ok_or_else(not_found)?;
        let record = lock.record()?.ok_or_else(not_found)?;
        self.refuse_interrupted(&record)?;
        let backend = self.backend(record.backend())?;
        Ok((lock, backend))
    }

    /// A create that died midway is an error that says how to clean it up.
    fn refuse_interrupted(&self, record: &Record) -> Result<()> {
        if !proxcage_store::health::create_interrupted(record) {
            return Ok(());
        }
        Err(Error::Conflict {
            id: record.id().clone(),
            message: format!(
                "its create was interrupted (proxcage process {} is gone): '{cmd} delete --force {id}' or '{cmd} health --repair' cleans it up",
                record.creator_pid().unwrap_or(0),
                cmd = self.command_line(),
                id = record.id(),
            ),
        })
    }

    /// The record of `id` and the backend it names.
    /// A create that died midway is an error that says how to clean it up.
    pub fn recorded_backend(&self, id: &ContainerId) -> Result<(Record, Box<dyn Backend>)> {
        let mut record = self.record(id)?;
        // Read without the lock, a `creating` record may be one whose creator finishes
        // (and exits) any moment: it is judged once, and a creator alive then is a create
        // in progress, even if it is gone by the time we answer. One that looked gone is
        // judged again under the lock, which a live create holds: then it is certain.
        if proxcage_store::health::create_interrupted(&record) {
            let not_found = || Error::NotFound { id: id.clone() };
            let lock = self.store()?.lock_existing(id)?.ok_or_else(not_found)?;
            record = lock.record()?.ok_or_else(not_found)?;
            self.refuse_interrupted(&record)?;
        }
        let backend = self.backend(record.backend())?;
        Ok((record, backend))
    }
}

/// The state of a container whose create has not reached its backend yet.
pub fn creating_state(record: &Record) -> State {
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

/// Makes a user-given path absolute against the cwd, as the backend would read it.
pub fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| Error::io("cannot resolve", path, e))
}
