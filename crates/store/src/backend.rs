//! A backend as the store sees it: a [`Runtime`] whose containers proxcage records, which
//! can say what it holds and clean up after a create that died midway.

use proxcage_core::{DeleteRequest, ErrorKind, Finding, Result, Runtime};

use crate::store::{Record, StateStore};

/// A [`Runtime`] that proxcage routes containers to and keeps records for.
pub trait Backend: Runtime {
    /// `proxcage health` for this backend: its prerequisites on the host, and its
    /// containers reconciled with the records of `store` (creates that died midway,
    /// records whose container is gone, containers without a record). An error means the
    /// check itself could not run.
    fn health(&self, store: &StateStore) -> Result<Vec<Finding>> {
        let _ = store;
        Ok(Vec::new())
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
