//! `create` and `run`: route the bundle, check the policy, record the choice, hand over.
//! The record is written as `creating` before the backend starts and marked `created`
//! after; a failure removes it, so a failed create leaves nothing behind. A record left
//! `creating` by a create that died midway is cleaned up by the next create of the id.

use std::sync::Arc;

use proxcage_core::{
    ContainerId, CreateRequest, DeleteRequest, Error, ErrorKind, Result, RunRequest,
};
use proxcage_store::{health, Backend, ContainerLock, Phase, Record};

use crate::engine::Engine;
use crate::interrupt::Deferred;

/// A create that is recorded and routed, not yet handed to its backend.
struct Prepared {
    lock: ContainerLock,
    record: Record,
    backend: Arc<dyn Backend>,
}

impl Engine {
    pub(crate) fn create_container(&self, req: &CreateRequest) -> Result<()> {
        let interrupt = Deferred::install(self.roll_back_on_signals)?;
        let Prepared {
            lock,
            mut record,
            backend,
        } = self.prepare(req)?;
        // A signal during prepare: nothing is handed to the backend.
        let created = match interrupt.received() {
            None => backend.create(req),
            Some(_) => Ok(()),
        };
        // Interrupted, whether the backend step then failed (its child got the signal too)
        // or finished: undo, and say so.
        if let Some(signal) = interrupt.received() {
            undo(&*backend, req.id(), lock);
            // Where the backend gave up (a lock it waited for names itself and its holder).
            let stopped = match &created {
                Err(e) => format!("; the create stopped at: {e}"),
                Ok(()) => String::new(),
            };
            return Err(Error::Conflict {
                id: req.id().clone(),
                message: format!(
                    "create interrupted by {signal}: rolled back, nothing was created{stopped}"
                ),
            });
        }
        if let Err(e) = created {
            undo(&*backend, req.id(), lock);
            return Err(e);
        }
        record.mark_created();
        lock.write(&record)
    }

    pub(crate) fn run_container(&self, req: &RunRequest) -> Result<i32> {
        let Prepared {
            lock,
            mut record,
            backend,
        } = self.prepare(&req.create)?;
        let id = req.create.id();
        // A foreground run lasts as long as the container: other commands (kill, state)
        // must not wait for its lock meanwhile. The record stays `creating`, with our pid,
        // until run returns.
        drop(lock);
        let result = backend.run(req);
        let Some(lock) = self.store.lock_existing(id)? else {
            // Deleted by someone else while it ran.
            return result;
        };
        let code = match result {
            Ok(code) => code,
            Err(e) => {
                undo(&*backend, id, lock);
                return Err(e);
            }
        };
        if req.detach || req.keep {
            record.mark_created();
            lock.write(&record)?;
        } else {
            // The backend removed the container when it exited.
            lock.remove()?;
        }
        Ok(code)
    }

    /// Takes the container's lock, cleans up after an interrupted create of the same id,
    /// routes the bundle, checks the policy and writes the provisional record.
    fn prepare(&self, req: &CreateRequest) -> Result<Prepared> {
        let id = req.id();
        let router = self.config.router(&self.registry)?;
        let lock = self.store.lock_new(id)?;
        if let Some(existing) = lock.record()? {
            self.recover_or_refuse(&existing)?;
        }
        let annotations = req
            .spec
            .annotations()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let chosen = router.choose(id, &annotations)?;
        let namespace_paths: Vec<std::path::PathBuf> = req
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .into_iter()
            .flatten()
            .filter_map(|ns| ns.path().clone())
            .collect();
        let (backend_name, reason) =
            self.follow_sandbox(id, &namespace_paths, &annotations, chosen)?;
        tracing::debug!("container {id}: backend {backend_name} ({reason})");
        self.config.security.check(
            id,
            &req.bundle.join("config.json"),
            &annotations,
            &backend_name,
            &reason,
            &self.config.path,
        )?;
        let backend = self.backend(&backend_name)?;
        let record = Record::creating(id.clone(), backend_name, &req.bundle);
        lock.write_provisional(&record)?;
        Ok(Prepared {
            lock,
            record,
            backend,
        })
    }

    /// An existing record refuses the create, unless it is what a create that died
    /// midway left behind: then the backend forgets what that create made and this
    /// create goes on.
    fn recover_or_refuse(&self, existing: &Record) -> Result<()> {
        let id = existing.id();
        let creator = match (existing.phase(), existing.creator_pid()) {
            (Phase::Creating, Some(pid)) => pid,
            _ => return Err(Error::AlreadyExists { id: id.clone() }),
        };
        if !health::create_interrupted(existing) {
            return Err(Error::Conflict {
                id: id.clone(),
                message: format!("is being created by proxcage process {creator}"),
            });
        }
        tracing::warn!(
            "container {id}: cleaning up after an interrupted create (process {creator} is gone)"
        );
        self.backend(existing.backend())?.recover(existing)
    }
}

/// After a failed create: the backend forgets whatever it made, the record goes.
fn undo(backend: &dyn Backend, id: &ContainerId, lock: ContainerLock) {
    match backend.delete(DeleteRequest { id, force: true }) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("container {id}: cleanup after the failed create: {e}"),
    }
    if let Err(e) = lock.remove() {
        tracing::warn!("container {id}: {e}");
    }
}
