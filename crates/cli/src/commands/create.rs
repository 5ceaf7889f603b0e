//! `create` and `run`: load the bundle once, hand it to the engine.

use proxcage_core::{ContainerId, CreateRequest, RunRequest, Runtime};
use proxcage_oci::Bundle;

use crate::args::{Create, Run};
use crate::context::{absolute, Ctx};

pub fn create(args: &Create, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let request = request(args)?;
    ctx.engine()?.create(&request)?;
    Ok(0)
}

pub fn run(args: &Run, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let run = RunRequest {
        create: request(&args.create)?,
        detach: args.detach,
        keep: args.keep,
        no_subreaper: args.no_subreaper,
    };
    Ok(ctx.engine()?.run(&run)?)
}

fn request(args: &Create) -> anyhow::Result<CreateRequest> {
    let id = ContainerId::new(&args.id)?;
    let bundle = Bundle::load(&args.bundle)?;
    for warning in bundle.warnings() {
        tracing::warn!("{}: {warning}", bundle.config_path().display());
    }
    let mut request = bundle.create_request(id);
    request.pid_file = args.pid_file.as_deref().map(absolute).transpose()?;
    request.console_socket = args.console_socket.as_deref().map(absolute).transpose()?;
    request.pidfd_socket = args.pidfd_socket.as_deref().map(absolute).transpose()?;
    request.preserve_fds = args.preserve_fds;
    request.no_pivot = args.no_pivot;
    request.no_new_keyring = args.no_new_keyring;
    Ok(request)
}
