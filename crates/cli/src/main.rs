//! `proxcage`: runc's command line over proxcage's backends.

mod args;
mod argv;
mod commands;
mod config;
mod context;
mod interrupt;
mod log;
mod security;

use clap::Parser;

use crate::args::Cli;
use crate::context::Ctx;
use crate::log::LogSink;

fn main() {
    let argv = argv::normalize(std::env::args_os().collect());
    let cli = match Cli::try_parse_from(argv) {
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
        let _ = <Cli as clap::CommandFactory>::command().print_help();
        std::process::exit(1);
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
    match commands::dispatch(command, &ctx) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            sink.error(&chain(&e));
            std::process::exit(exit_code(&e));
        }
    }
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
