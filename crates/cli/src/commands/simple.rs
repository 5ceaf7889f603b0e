//! Commands that hand one request about one container to its recorded backend.

use proxcage_core::{ContainerId, KillRequest, Result, Signal};
use proxcage_store::Backend;

use crate::args::{Id, Kill};
use crate::context::Ctx;

/// Validates the id, finds its backend, and runs `request` there, holding the
/// container's lock: a `delete` or `create` of the same id running meanwhile finishes
/// first, so the backend never sees a container half made or half removed.
fn on_recorded(
    id: &str,
    ctx: &Ctx<'_>,
    request: impl FnOnce(&dyn Backend, &ContainerId) -> Result<()>,
) -> anyhow::Result<i32> {
    let id = ContainerId::new(id)?;
    let (_lock, backend) = ctx.locked_backend(&id)?;
    request(&*backend, &id)?;
    Ok(0)
}

pub fn start(args: &Id, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    on_recorded(&args.id, ctx, |backend, id| backend.start(id))
}

pub fn pause(args: &Id, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    on_recorded(&args.id, ctx, |backend, id| backend.pause(id))
}

pub fn resume(args: &Id, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    on_recorded(&args.id, ctx, |backend, id| backend.resume(id))
}

pub fn kill(args: &Kill, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let signal: Signal = args.signal.parse()?;
    on_recorded(&args.id, ctx, |backend, id| {
        backend.kill(KillRequest {
            id,
            signal,
            all: args.all,
        })
    })
}
