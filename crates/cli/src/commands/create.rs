//! `create` and `run`: load and check the bundle, pick the backend, record the choice,
//! hand over. The record is written as `creating` before the backend starts and marked
//! `created` after; a failure removes it, so a failed create leaves nothing behind.

use proxcage_core::{ContainerId, CreateRequest, DeleteRequest, Error, ErrorKind, RunRequest};
use proxcage_oci::Bundle;
use proxcage_store::health;
use proxcage_store::Backend;
use proxcage_store::{ContainerLock, Phase, Record};

use crate::args::{Create, Run};
use crate::context::{absolute, Ctx};
use crate::interrupt::Deferred;

pub fn create(args: &Create, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let interrupt = Deferred::install()?;
    let prepared = prepare(args, ctx)?;
    let Prepared {
        lock,
        mut record,
        backend,
        request,
    } = prepared;
    // A signal during prepare: nothing is handed to the backend.
    let created = match interrupt.received() {
        None => backend.create(&request),
        Some(_) => Ok(()),
    };
    // Interrupted, whether the backend step then failed (its child got the signal too)
    // or finished: undo, and say so.
    if let Some(signal) = interrupt.received() {
        let id = request.id().clone();
        undo(&*backend, &id, lock);
        return Err(anyhow::anyhow!(
            "container {id}: create interrupted by {signal}: rolled back, nothing was created"
        ));
    }
    if let Err(e) = created {
        undo(&*backend, &request.id().clone(), lock);
        return Err(e.into());
    }
    record.mark_created();
    lock.write(&record)?;
    Ok(0)
}

pub fn run(args: &Run, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let Prepared {
        lock,
        mut record,
        backend,
        request,
    } = prepare(&args.create, ctx)?;
    let id = request.id().clone();
    // A foreground run lasts as long as the container: other commands (kill, state) must
    // not wait for its lock meanwhile. The record stays `creating`, with our pid, until
    // run returns.
    drop(lock);
    let run = RunRequest {
        create: request,
        detach: args.detach,
        keep: args.keep,
        no_subreaper: args.no_subreaper,
    };
    let result = backend.run(&run);
    let Some(lock) = ctx.store()?.lock_existing(&id)? else {
        // Deleted by someone else while it ran.
        return Ok(result?);
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            undo(&*backend, &id, lock);
            return Err(e.into());
        }
    };
    if args.detach || args.keep {
        record.mark_created();
        lock.write(&record)?;
    } else {
        // The backend removed the container when it exited.
        lock.remove()?;
    }
    Ok(code)
}

struct Prepared {
    lock: ContainerLock,
    record: Record,
    backend: Box<dyn Backend>,
    request: CreateRequest,
}

fn prepare(args: &Create, ctx: &Ctx<'_>) -> anyhow::Result<Prepared> {
    let id = ContainerId::new(&args.id)?;
    let bundle = Bundle::load(&args.bundle)?;
    for warning in bundle.warnings() {
        tracing::warn!("{}: {warning}", bundle.config_path().display());
    }
    let config = ctx.config()?;
    let router = config.router()?;
    let store = ctx.store()?;
    let lock = store.lock_new(&id)?;
    if let Some(existing) = lock.record()? {
        recover_or_refuse(&existing, ctx)?;
    }
    let (backend_name, reason) = router.choose(&id, &bundle.annotations())?;
    tracing::debug!("container {id}: backend {backend_name} ({reason})");
    config
        .security
        .check(&id, &bundle, &backend_name, &reason, &config.path)?;
    let backend = ctx.backend(&backend_name)?;
    let record = Record::creating(id.clone(), backend_name, bundle.dir());
    lock.write_provisional(&record)?;
    let mut request = CreateRequest::new(id, bundle.dir());
    request.pid_file = args.pid_file.as_deref().map(absolute).transpose()?;
    request.console_socket = args.console_socket.as_deref().map(absolute).transpose()?;
    request.pidfd_socket = args.pidfd_socket.as_deref().map(absolute).transpose()?;
    request.preserve_fds = args.preserve_fds;
    request.no_pivot = args.no_pivot;
    request.no_new_keyring = args.no_new_keyring;
    Ok(Prepared {
        lock,
        record,
        backend,
        request,
    })
}

/// An existing record refuses the create, unless it is what a create that died midway
/// left behind: then the backend forgets what that create made and this create goes on.
fn recover_or_refuse(existing: &Record, ctx: &Ctx<'_>) -> anyhow::Result<()> {
    let id = existing.id();
    let creator = match (existing.phase(), existing.creator_pid()) {
        (Phase::Creating, Some(pid)) => pid,
        _ => return Err(Error::AlreadyExists { id: id.clone() }.into()),
    };
    if !health::create_interrupted(existing) {
        return Err(Error::Conflict {
            id: id.clone(),
            message: format!("is being created by proxcage process {creator}"),
        }
        .into());
    }
    tracing::warn!(
        "container {id}: cleaning up after an interrupted create (process {creator} is gone)"
    );
    ctx.backend(existing.backend())?.recover(existing)?;
    Ok(())
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
