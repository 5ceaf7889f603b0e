//! A backend as the store sees it: a [`Runtime`] whose containers proxcage records, which
//! says what it holds (so [`crate::health::reconcile`] can compare that with the records)
//! and cleans up after a create that died midway.

use proxcage_core::{ContainerId, DeleteRequest, ErrorKind, Finding, Result, Runtime};

use crate::store::{Record, StateStore};

/// One container a backend holds under its root.
#[derive(Clone, Debug, PartialEq)]
pub struct Held {
    pub id: ContainerId,
    /// Where the backend keeps it (a path, `pct:105`), for the report.
    pub location: String,
    /// What the backend has, in words: `runc has this container (stopped)`; for one it
    /// cannot vouch for, why.
    pub what: String,
    /// The record to write again if proxcage lost its own; `None` when the backend cannot
    /// vouch for the container (its state cannot be read, its CT is gone): the backend's
    /// own checks report those.
    pub record: Option<Record>,
}

/// What an interrupted create left in a backend, as far as the backend can tell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Each thing left, in words (`CT 105 (recorded)`, a path).
    pub items: Vec<String>,
    /// Why it cannot be cleaned up right now (a backend tool still works on it), if so:
    /// the finding is reported without a repair.
    pub busy: Option<String>,
}

/// A [`Runtime`] that proxcage routes containers to and keeps records for.
///
/// `proxcage health` reconciles what the backend holds ([`Backend::held`]) with the
/// store's records: creates that died midway, records whose container is gone, containers
/// without a record are found the same way for every backend. A backend adds only the
/// findings that are its own ([`Backend::health`]).
pub trait Backend: Runtime {
    /// The containers this backend holds under its root. By default, what its `list`
    /// returns.
    fn held(&self) -> Result<Vec<Held>> {
        Ok(self
            .list()?
            .into_iter()
            .filter_map(|state| {
                let id = ContainerId::new(&state.id).ok()?;
                Some(held_from_state(self.name(), id, &state))
            })
            .collect())
    }

    /// Whether the backend holds `id` right now (asked again, under the container's
    /// lock, before a finding about it is reported or repaired). By default, whether its
    /// `state` answers.
    fn holds(&self, id: &ContainerId) -> Result<Option<Held>> {
        match self.state(id) {
            Ok(state) => Ok(Some(held_from_state(self.name(), id.clone(), &state))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The backend's own checks: its prerequisites on the host, and what only it can
    /// find. `held` is what [`Backend::held`] returned for this check. An error means the
    /// check itself could not run.
    fn health(&self, store: &StateStore, held: &[Held]) -> Result<Vec<Finding>> {
        let _ = (store, held);
        Ok(Vec::new())
    }

    /// What the interrupted create of `record` left in the backend, for the report.
    fn left_by(&self, record: &Record) -> Result<Leftovers> {
        let _ = record;
        Ok(Leftovers::default())
    }

    /// Forgets whatever the interrupted create of `record` left in the backend (its
    /// creator is gone, see [`crate::health::create_interrupted`]). The caller removes
    /// the record afterwards.
    fn recover(&self, record: &Record) -> Result<()> {
        match self.delete(DeleteRequest {
            id: record.id(),
            force: true,
        }) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// What a backend that knows the container's OCI state holds of it.
pub fn held_from_state(backend: &str, id: ContainerId, state: &proxcage_core::State) -> Held {
    Held {
        location: format!("{backend}:{id}"),
        what: format!("{backend} has this container ({})", state.status),
        record: Some(Record::restored(
            id.clone(),
            backend,
            state.bundle.clone(),
            state.created.clone(),
        )),
        id,
    }
}
