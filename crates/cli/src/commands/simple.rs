//! Commands that hand one request about one container to its backend.

use proxcage_core::{ContainerId, KillRequest, Signal};

use crate::args::{Id, Kill};
use crate::context::Ctx;

pub fn start(args: &Id, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let id = ContainerId::new(&args.id)?;
    let (_, backend) = ctx.recorded_backend(&id)?;
    backend.start(&id)?;
    Ok(0)
}

pub fn pause(args: &Id, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let id = ContainerId::new(&args.id)?;
    let (_, backend) = ctx.recorded_backend(&id)?;
    backend.pause(&id)?;
    Ok(0)
}

pub fn resume(args: &Id, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let id = ContainerId::new(&args.id)?;
    let (_, backend) = ctx.recorded_backend(&id)?;
    backend.resume(&id)?;
    Ok(0)
}

pub fn kill(args: &Kill, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let id = ContainerId::new(&args.id)?;
    let signal: Signal = args.signal.parse()?;
    let (_, backend) = ctx.recorded_backend(&id)?;
    backend.kill(KillRequest {
        id: &id,
        signal,
        all: args.all,
    })?;
    Ok(0)
}
