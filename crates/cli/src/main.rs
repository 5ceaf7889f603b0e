//! `proxcage`: runc's command line over proxcage's backends.

// The unit tests' harness replaces `main`, from which the rest is reached.
#![cfg_attr(test, allow(dead_code))]

mod commands;
mod context;
mod log;

use proxcage_cli_args as args;

use crate::args::Cli;
use crate::context::Ctx;
use crate::log::LogSink;

/// The release build links musl (scripts/build-release.sh), whose own malloc maps and
/// unmaps memory for nearly every size class it meets; dlmalloc takes memory in large
/// pieces and keeps what is freed, which matters to a process that lives a millisecond.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() {
    // std's runtime ignores SIGPIPE; proxcage keeps its default, as runc and crun do: a
    // reader that goes away (`proxcage list | head -1`) ends it quietly.
    // SAFETY: a plain syscall, made before any other thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    run(std::env::args_os().collect());
}

fn run(args: Vec<std::ffi::OsString>) {
    let cli = match args::parse(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Help and usage are not failures; anything else exits 1, as runc does.
            std::process::exit(if e.use_stderr() { 1 } else { 0 });
        }
    };
    if cli.global.version {
        print!(
            "proxcage version {}\ncommit: {}\nspec: {}\n",
            env!("CARGO_PKG_VERSION"),
            env!("PROXCAGE_COMMIT"),
            proxcage_core::OCI_VERSION
        );
        return;
    }
    let Some(command) = &cli.command else {
        // runc prints its help and exits 0.
        let _ = <Cli as clap::CommandFactory>::command().print_help();
        std::process::exit(0);
    };
    let sink: &'static LogSink =
        match LogSink::open(cli.global.log.as_deref(), cli.global.log_format) {
            Ok(sink) => Box::leak(Box::new(sink)),
            Err(e) => {
                let path = cli
                    .global
                    .log
                    .as_deref()
                    .unwrap_or(std::path::Path::new(""))
                    .display();
                eprintln!("proxcage: cannot open the log file {path}: {e}");
                std::process::exit(1);
            }
        };
    log::init(sink, cli.global.debug);
    let ctx = Ctx::new(&cli.global);
    let code = match commands::dispatch(command, &ctx) {
        Ok(code) => code,
        Err(e) => {
            sink.error(&chain(&e));
            exit_code(&e)
        }
    };
    if cli.global.debug {
        tracing::debug!("{}", own_usage());
    }
    std::process::exit(code);
}

/// What this invocation cost, itself, without the backend's processes: peak RSS, CPU
/// time and the fds open at its end. With `--debug`, for `scripts/valgrind.sh` and
/// `benches/soak.sh`.
fn own_usage() -> String {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let ms = |t: libc::timeval| t.tv_sec * 1000 + t.tv_usec / 1000;
    // One of the entries is read_dir's own descriptor.
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count().saturating_sub(1));
    format!(
        "usage: peak RSS {} kB, user {} ms, system {} ms, open fds {fds}",
        usage.ru_maxrss,
        ms(usage.ru_utime),
        ms(usage.ru_stime)
    )
}

/// The whole error chain on one line. Sources whose text the message already holds
/// (errors that print their cause) are not repeated.
fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn exit_code(e: &anyhow::Error) -> i32 {
    e.chain()
        .find_map(|c| c.downcast_ref::<proxcage_core::Error>())
        .map_or(1, proxcage_core::Error::exit_code)
}
