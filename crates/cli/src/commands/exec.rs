use proxcage_core::{ContainerId, ExecRequest, Runtime};

use crate::args::Exec;
use crate::context::{absolute, Ctx};

pub fn exec(args: &Exec, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let id = ContainerId::new(&args.id)?;
    if args.process.is_none() && args.args.is_empty() {
        anyhow::bail!("exec needs a command after the container id, or --process FILE");
    }
    let mut req = ExecRequest::new(id);
    req.process_file = args.process.as_deref().map(absolute).transpose()?;
    req.args = args.args.clone();
    req.cwd = args.cwd.clone();
    req.env = args.env.clone();
    req.user = args.user.clone();
    req.additional_gids = args.additional_gids.clone();
    req.caps = args.cap.clone();
    req.tty = args.tty;
    req.console_socket = args.console_socket.as_deref().map(absolute).transpose()?;
    req.pidfd_socket = args.pidfd_socket.as_deref().map(absolute).transpose()?;
    req.detach = args.detach;
    req.pid_file = args.pid_file.as_deref().map(absolute).transpose()?;
    req.preserve_fds = args.preserve_fds;
    req.no_new_privs = args.no_new_privs;
    req.apparmor = args.apparmor.clone();
    req.process_label = args.process_label.clone();
    req.cgroup = args.cgroup.clone();
    req.ignore_paused = args.ignore_paused;
    Ok(ctx.engine()?.exec(&req)?)
}
