//! The engine as a [`Runtime`]: each request goes to the backend the container's record
//! names, under the container's lock where a concurrent create or delete of the same id
//! must finish first.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use proxcage_core::{
    CheckpointRequest, ContainerId, CreateRequest, DeleteRequest, Error, ErrorKind, Event,
    EventsRequest, ExecRequest, Flow, KillRequest, RestoreRequest, Result, RunRequest, Runtime,
    State, Status, UpdateRequest,
};
use proxcage_store::{health, Backend, Phase, Record};
use serde::Serialize;

use crate::engine::{creating_state, Engine};

/// A container as `list` shows it: its state and the backend that runs it.
#[derive(Clone, Debug, Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub state: State,
    pub backend: String,
    /// Recorded, but its backend no longer has it (deleted behind proxcage's back): its
    /// state is the record's, `stopped`; `delete` forgets it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub gone: bool,
}

impl Listed {
    /// The status to show: the state's, or `gone`.
    pub fn status(&self) -> &'static str {
        if self.gone {
            "gone"
        } else {
            self.state.status.as_str()
        }
    }
}

impl Engine {
    /// Runs `request` on the backend of `id`, holding the container's lock: a `delete`
    /// or `create` of the same id running meanwhile finishes first, so the backend never
    /// sees a container half made or half removed.
    fn on_locked<T>(
        &self,
        id: &ContainerId,
        request: impl FnOnce(&dyn Backend) -> Result<T>,
    ) -> Result<T> {
        let (_lock, backend) = self.locked_backend(id)?;
        request(&*backend)
    }

    /// Every recorded container with its state from its backend (one `list` per backend
    /// in use), and the backend's name.
    pub fn list_containers(&self) -> Result<Vec<Listed>> {
        let mut records: Vec<Record> = Vec::new();
        for record in self.store.records()? {
            match record {
                Ok(record) => records.push(record),
                Err(e) => tracing::warn!("{e}"),
            }
        }
        // A backend (if it could be set up) and the states its `list` returned, by id.
        type Listing = (Option<Arc<dyn Backend>>, HashMap<String, State>);
        let mut backends: BTreeMap<&str, Listing> = BTreeMap::new();
        for record in &records {
            backends.entry(record.backend()).or_insert_with(|| {
                let backend = self.backend(record.backend());
                let listed = match backend
                    .as_ref()
                    .map_err(|e| e.to_string())
                    .and_then(|b| b.list().map_err(|e| e.to_string()))
                {
                    Ok(list) => list.into_iter().map(|s| (s.id.clone(), s)).collect(),
                    Err(e) => {
                        tracing::debug!("backend {}: {e}", record.backend());
                        HashMap::new()
                    }
                };
                (backend.ok(), listed)
            });
        }
        // A container the backend's list missed (created meanwhile, or its list failed on
        // a neighbour being deleted) is asked for on its own.
        let mut rows = Vec::new();
        for record in &records {
            let (backend, listed) = &backends[record.backend()];
            let state = match listed.get(record.id().as_str()) {
                Some(state) => Some(state.clone()),
                None => backend.as_ref().and_then(|b| b.state(record.id()).ok()),
            };
            let (state, gone) = match (state, record.phase()) {
                (Some(state), _) => (state, false),
                (None, Phase::Creating) => (creating_state(record), false),
                (None, Phase::Created) => {
                    let mut state = creating_state(record);
                    state.status = Status::Stopped;
                    (state, true)
                }
            };
            rows.push(Listed {
                state,
                backend: record.backend().to_string(),
                gone,
            });
        }
        Ok(rows)
    }

    fn delete_container(&self, req: DeleteRequest<'_>) -> Result<()> {
        let id = req.id;
        let not_found = || {
            if req.force {
                Ok(())
            } else {
                Err(Error::NotFound { id: id.clone() })
            }
        };
        let Some(lock) = self.store.lock_existing(id)? else {
            return not_found();
        };
        let backends = match lock.record() {
            // A create that died midway: the backend forgets whatever it made.
            Ok(Some(record)) if health::create_interrupted(&record) => {
                self.backend(record.backend())?.recover(&record)?;
                return lock.remove();
            }
            Ok(Some(record)) => vec![self.backend(record.backend())?],
            // A directory without a record: a create that died before writing it.
            Ok(None) => return not_found(),
            // An unreadable record: with --force, every backend this host has is asked to
            // forget the id.
            Err(e @ Error::CorruptRecord { .. }) if !req.force => return Err(e),
            Err(Error::CorruptRecord { .. }) => self
                .registry
                .names()
                .iter()
                .filter_map(|name| self.backend(name).ok())
                .collect(),
            Err(e) => return Err(e),
        };
        for backend in &backends {
            match backend.delete(req) {
                Ok(()) => {}
                // Already gone in the backend: the record goes too.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        lock.remove()
    }

    fn container_state(&self, id: &ContainerId) -> Result<State> {
        let (record, backend) = self.recorded_backend(id)?;
        match backend.state(id) {
            Ok(state) => Ok(state),
            // Recorded, but the backend has not made it yet: a create in progress.
            Err(e) if e.kind() == ErrorKind::NotFound && record.phase() == Phase::Creating => {
                Ok(creating_state(&record))
            }
            // state takes no lock (it must answer while a long create runs), so it may
            // have met a delete or create of the same id halfway: wait for that to finish
            // and ask again.
            Err(_) => self.on_locked(id, |backend| backend.state(id)),
        }
    }

    /// What the default backend supports, and which backends proxcage routes to.
    fn engine_features(&self) -> Result<serde_json::Value> {
        let backend = self.backend(&self.config.default_backend)?;
        let mut features = backend.features()?;
        if !features["annotations"].is_object() {
            features["annotations"] = serde_json::json!({});
        }
        let annotations = &mut features["annotations"];
        annotations["io.proxcage.backends"] = self.registry.names().join(",").into();
        annotations["io.proxcage.default-backend"] = self.config.default_backend.clone().into();
        annotations["io.proxcage.version"] = env!("CARGO_PKG_VERSION").into();
        Ok(features)
    }
}

impl Runtime for Engine {
    fn name(&self) -> &str {
        "proxcage"
    }

    fn create(&self, req: &CreateRequest) -> Result<()> {
        self.create_container(req)
    }

    fn start(&self, id: &ContainerId) -> Result<()> {
        self.on_locked(id, |backend| backend.start(id))
    }

    fn state(&self, id: &ContainerId) -> Result<State> {
        self.container_state(id)
    }

    fn kill(&self, req: KillRequest<'_>) -> Result<()> {
        self.on_locked(req.id, |backend| backend.kill(req))
    }

    fn delete(&self, req: DeleteRequest<'_>) -> Result<()> {
        self.delete_container(req)
    }

    fn run(&self, req: &RunRequest) -> Result<i32> {
        self.run_container(req)
    }

    fn list(&self) -> Result<Vec<State>> {
        Ok(self
            .list_containers()?
            .into_iter()
            .map(|listed| listed.state)
            .collect())
    }

    fn exec(&self, req: &ExecRequest) -> Result<i32> {
        let (_, backend) = self.recorded_backend(req.id())?;
        backend.exec(req)
    }

    fn ps(&self, id: &ContainerId) -> Result<Vec<i32>> {
        let (_, backend) = self.recorded_backend(id)?;
        backend.ps(id)
    }

    fn pause(&self, id: &ContainerId) -> Result<()> {
        self.on_locked(id, |backend| backend.pause(id))
    }

    fn resume(&self, id: &ContainerId) -> Result<()> {
        self.on_locked(id, |backend| backend.resume(id))
    }

    fn features(&self) -> Result<serde_json::Value> {
        self.engine_features()
    }

    fn update(&self, req: &UpdateRequest) -> Result<()> {
        self.on_locked(&req.id, |backend| backend.update(req))
    }

    /// Without the lock: a stream lasts as long as the container, and a delete must not
    /// wait for it.
    fn events(
        &self,
        req: &EventsRequest,
        receiver: &mut dyn FnMut(Event) -> Result<Flow>,
    ) -> Result<()> {
        let (_, backend) = self.recorded_backend(&req.id)?;
        backend.events(req, receiver)
    }

    fn checkpoint(&self, req: &CheckpointRequest) -> Result<()> {
        self.on_locked(&req.id, |backend| backend.checkpoint(req))
    }

    /// A restore goes to the backend that ran the container: its record stays after a
    /// checkpoint, until `delete`. One in the foreground lasts as long as the container,
    /// so it takes the lock only when detached, as `exec` takes none.
    fn restore(&self, req: &RestoreRequest) -> Result<i32> {
        if req.detach {
            return self.on_locked(&req.id, |backend| backend.restore(req));
        }
        let (_, backend) = self.recorded_backend(&req.id)?;
        backend.restore(req)
    }
}
