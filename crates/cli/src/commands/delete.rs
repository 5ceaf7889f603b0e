//! `delete`: the backend deletes, then the record goes. A `created` container needs no
//! --force; an unknown id with --force is not an error (containerd's shim and podman
//! delete twice).

use proxcage_core::{ContainerId, DeleteRequest, Error, ErrorKind};
use proxcage_store::health;

use crate::args::Delete;
use crate::config::BACKENDS;
use crate::context::Ctx;

pub fn delete(args: &Delete, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let id = ContainerId::new(&args.id)?;
    let not_found = || -> anyhow::Result<i32> {
        if args.force {
            Ok(0)
        } else {
            Err(Error::NotFound { id: id.clone() }.into())
        }
    };
    let Some(lock) = ctx.store()?.lock_existing(&id)? else {
        return not_found();
    };
    let request = DeleteRequest {
        id: &id,
        force: args.force,
    };
    let backends = match lock.record() {
        // A create that died midway: the backend forgets whatever it made.
        Ok(Some(record)) if health::create_interrupted(&record) => {
            ctx.backend(record.backend())?.recover(&record)?;
            lock.remove()?;
            return Ok(0);
        }
        Ok(Some(record)) => vec![ctx.backend(record.backend())?],
        // A directory without a record: a create that died before writing it.
        Ok(None) => return not_found(),
        // An unreadable record: with --force, every backend this host has is asked to
        // forget the id.
        Err(e @ Error::CorruptRecord { .. }) if !args.force => return Err(e.into()),
        Err(Error::CorruptRecord { .. }) => BACKENDS
            .iter()
            .filter_map(|name| ctx.backend(name).ok())
            .collect(),
        Err(e) => return Err(e.into()),
    };
    for backend in &backends {
        match backend.delete(request) {
            Ok(()) => {}
            // Already gone in the backend: the record goes too.
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    lock.remove()?;
    Ok(0)
}
