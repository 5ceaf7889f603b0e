//! One function per subcommand; the work is in the libraries.

mod bundle;
mod create;
mod exec;
mod health;
mod list;
mod lxc_config;
mod ps;
mod simple;
mod spec;
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
        Command::Spec(args) => spec::spec(args),
        Command::Bundle(crate::args::BundleCommand::Create(args)) => bundle::create(args),
        Command::Template(crate::args::TemplateCommand::Create(args)) => {
            template::create(args, ctx)
        }
        Command::LxcConfig(args) => lxc_config::show(args, ctx),
        Command::Health(args) => health::health(args, ctx),
    }
}

/// Prints `text` to stdout as the command's result.
fn print(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}
