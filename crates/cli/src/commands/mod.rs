//! One function per subcommand; the work is in the libraries.

#[cfg(target_os = "linux")]
mod bundle;
mod create;
mod exec;
mod health;
mod list;
#[cfg(target_os = "linux")]
mod lxc_config;
mod ps;
mod resources;
mod simple;
mod spec;
#[cfg(target_os = "linux")]
mod template;

use crate::args::Command;
use crate::context::Ctx;

/// Runs `command` and returns the exit code.
pub fn dispatch(command: &Command, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    if !matches!(command, Command::Spec(_) | Command::Bundle(_)) {
        // A broken config file is reported by every command that works with containers,
        // not only by the ones that happen to need a backend.
        ctx.config()?;
    }
    match command {
        Command::Create(args) => create::create(args, ctx),
        Command::Run(args) => create::run(args, ctx),
        Command::Start(args) => simple::start(args, ctx),
        Command::Pause(args) => simple::pause(args, ctx),
        Command::Resume(args) => simple::resume(args, ctx),
        Command::Kill(args) => simple::kill(args, ctx),
        Command::State(args) => simple::state(args, ctx),
        Command::Delete(args) => simple::delete(args, ctx),
        Command::List(args) => list::list(args, ctx),
        Command::Exec(args) => exec::exec(args, ctx),
        Command::Ps(args) => ps::ps(args, ctx),
        Command::Features => simple::features(ctx),
        Command::Update(args) => resources::update(args, ctx),
        Command::Events(args) => resources::events(args, ctx),
        Command::Checkpoint(args) => resources::checkpoint(args, ctx),
        Command::Restore(args) => resources::restore(args, ctx),
        Command::Spec(args) => spec::spec(args),
        #[cfg(target_os = "linux")]
        Command::Bundle(crate::args::BundleCommand::Create(args)) => bundle::create(args),
        #[cfg(target_os = "linux")]
        Command::Template(crate::args::TemplateCommand::Create(args)) => {
            template::create(args, ctx)
        }
        #[cfg(target_os = "linux")]
        Command::LxcConfig(args) => lxc_config::show(args, ctx),
        #[cfg(not(target_os = "linux"))]
        Command::Bundle(_) => Err(linux_only("bundle create")),
        #[cfg(not(target_os = "linux"))]
        Command::Template(_) => Err(linux_only("template create")),
        #[cfg(not(target_os = "linux"))]
        Command::LxcConfig(_) => Err(linux_only("lxc-config")),
        Command::Health(args) => health::health(args, ctx),
    }
}

/// The error of a command this system's build lacks.
#[cfg(not(target_os = "linux"))]
fn linux_only(command: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "'proxcage {command}' is not in this build: building bundles from images, Proxmox templates and LXC configuration need Linux; make bundles with this host's own tools (buildah, podman)"
    )
}

/// Prints `text` to stdout as the command's result.
fn print(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}
