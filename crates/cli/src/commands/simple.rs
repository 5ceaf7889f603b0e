//! Commands that hand one request about one container to the engine.

use proxcage_core::{ContainerId, DeleteRequest, KillRequest, Runtime, Signal};

use super::print;
use crate::args::{Delete, Id, Kill};
use crate::context::Ctx;

pub fn start(args: &Id, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    ctx.engine()?.start(&ContainerId::new(&args.id)?)?;
    Ok(0)
}

pub fn pause(args: &Id, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    ctx.engine()?.pause(&ContainerId::new(&args.id)?)?;
    Ok(0)
}

pub fn resume(args: &Id, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    ctx.engine()?.resume(&ContainerId::new(&args.id)?)?;
    Ok(0)
}

pub fn kill(args: &Kill, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let signal: Signal = args.signal.parse()?;
    let id = ContainerId::new(&args.id)?;
    ctx.engine()?.kill(KillRequest {
        id: &id,
        signal,
        all: args.all,
    })?;
    Ok(0)
}

/// A `created` container needs no --force; an unknown id with --force is not an error
/// (containerd's shim and podman delete twice).
pub fn delete(args: &Delete, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let id = ContainerId::new(&args.id)?;
    ctx.engine()?.delete(DeleteRequest {
        id: &id,
        force: args.force,
    })?;
    Ok(0)
}

pub fn state(args: &Id, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let state = ctx.engine()?.state(&ContainerId::new(&args.id)?)?;
    print(&state.to_pretty_json())?;
    Ok(0)
}

/// What the default backend supports, and which backends proxcage routes to.
pub fn features(ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let features = ctx.engine()?.features()?;
    print(&serde_json::to_string_pretty(&features)?)?;
    Ok(0)
}
