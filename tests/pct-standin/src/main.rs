//! The pct stand-in: TEST CODE that plays Proxmox VE's `pct` and `pvesh` for proxcage's
//! tests on a machine without Proxmox. It is not Proxmox and is never shipped.
//!
//! One binary, dispatched on the file name it is called by: `pct`, `pvesh`, or
//! `pct-standin` (only `pct-standin cleanup`). Tests put symlinks named `pct` and `pvesh`
//! to it in a bin directory of their own. It follows `shared/reference/pct.md`: the
//! subcommands, options, value checks, output formats, error messages and exit codes of
//! pct, with `.conf` files in a `/etc/pve`-like tree, and runs real LXC containers,
//! daemonised, from a config rebuilt on every `pct start`.
//!
//! Everything lives under `$PCT_STANDIN_ROOT` (required); the node name is
//! `$PCT_STANDIN_NODE` (default `pve`). See [`layout::Layout`] for the tree.

mod args;
mod conf;
mod layout;
mod lock;
mod lxc;
mod pct;
mod pvesh;
mod run;
mod storage;
mod template;

use std::io::Write;
use std::path::Path;

/// A command's final error: its text as pct prints it on stderr, the usage line pct adds
/// to parameter errors, and the exit status (255: Perl's `exit(-1)`).
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub usage: Option<String>,
    pub code: i32,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            usage: None,
            code: 255,
        }
    }

    pub fn usage(message: impl Into<String>, usage: &str) -> Self {
        Failure {
            message: message.into(),
            usage: Some(usage.to_string()),
            code: 255,
        }
    }

    /// A failure that ends the process with `code` and prints nothing (exec's exit code).
    pub fn exit(code: i32) -> Self {
        Failure {
            message: String::new(),
            usage: None,
            code,
        }
    }
}

/// An I/O error as pve words them: `unable to <what> '<path>' - <error>`.
pub fn io_fail<'a>(what: &'a str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Failure + 'a {
    let what = what.to_string();
    move |e| Failure::new(format!("unable to {what} '{}' - {e}", path.display()))
}

/// Where warnings go: task commands (create, start, stop, shutdown, destroy) print them on
/// stdout as task output, the others on stderr.
#[derive(Debug, Clone, Copy)]
pub enum Warn {
    Stdout,
    Stderr,
    /// For a second look at a config whose warnings were already printed.
    Silent,
}

impl Warn {
    pub fn say(self, msg: &str) {
        let msg = msg.trim_end_matches('\n');
        match self {
            Warn::Stdout => {
                println!("{msg}");
                let _ = std::io::stdout().flush();
            }
            Warn::Stderr => eprintln!("{msg}"),
            Warn::Silent => {}
        }
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let name = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("pct-standin")
        .to_string();
    let rest = &argv[argv.len().min(1)..];
    let result = layout::Layout::from_env().and_then(|layout| match name.as_str() {
        "pct" => pct::main(&layout, rest),
        "pvesh" => pvesh::main(&layout, rest),
        _ => match rest.first().map(String::as_str) {
            Some("cleanup") => pct::cleanup(&layout),
            _ => Err(Failure::new(
                "pct stand-in: call me as `pct` or `pvesh` (symlinks), or `pct-standin cleanup`",
            )),
        },
    });
    if let Err(failure) = result {
        let _ = std::io::stdout().flush();
        if !failure.message.is_empty() {
            eprintln!("{}", failure.message.trim_end_matches('\n'));
        }
        if let Some(usage) = failure.usage {
            eprintln!("{usage}");
        }
        std::process::exit(failure.code);
    }
}
