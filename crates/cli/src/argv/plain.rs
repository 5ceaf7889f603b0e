//! The lifecycle commands, read without clap.
//!
//! containerd's shim and podman call `create`, `start`, `state`, `kill` and `delete` (and
//! `run`, `pause`, `resume`) on every container's path, always in one plain shape: global
//! flags, the command, its flags, the id, and for `kill` the signal. Even the scoped clap
//! command of one of them is three quarters of the instructions a `start` costs of its
//! own. This reader takes that shape from a table of flags per command and leaves
//! everything else to clap (`None`): help and version, `--`, a flag given twice, a value
//! that is empty or starts with `-`, short flags run together or with their value
//! attached, flags after the id, global flags after the command, arguments that are not
//! UTF-8. What it reads, it reads as clap would; a property test holds it to that.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::args::{Cli, Command, Create, Delete, Global, Id, Kill, LogFormat, Run};

/// A flag of the plain shape: its long name, its one-letter name, whether it takes a value.
struct Flag {
    long: &'static str,
    short: Option<char>,
    value: bool,
}

const fn switch(long: &'static str, short: Option<char>) -> Flag {
    Flag {
        long,
        short,
        value: false,
    }
}

const fn valued(long: &'static str, short: Option<char>) -> Flag {
    Flag {
        long,
        short,
        value: true,
    }
}

/// The flags before the command, as in [`Global`] (`--version` is left to clap).
const GLOBAL: &[Flag] = &[
    valued("root", None),
    valued("log", None),
    valued("log-format", None),
    switch("debug", None),
    switch("systemd-cgroup", None),
    valued("rootless", None),
    valued("config", None),
];

/// [`Create`]'s flags, which `run` has too.
const CREATE: &[Flag] = &[
    valued("bundle", Some('b')),
    valued("pid-file", None),
    valued("console-socket", None),
    valued("pidfd-socket", None),
    valued("preserve-fds", None),
    switch("no-pivot", None),
    switch("no-new-keyring", None),
];

/// [`Run`]'s own flags.
const RUN: &[Flag] = &[
    switch("detach", Some('d')),
    switch("keep", None),
    switch("no-subreaper", None),
];

const KILL: &[Flag] = &[switch("all", Some('a'))];

const DELETE: &[Flag] = &[switch("force", Some('f'))];

/// The flags read so far, by long name, with their values (`None` for a switch).
#[derive(Default)]
struct Seen<'a>(Vec<(&'static str, Option<&'a str>)>);

impl<'a> Seen<'a> {
    fn has(&self, long: &str) -> bool {
        self.0.iter().any(|(name, _)| *name == long)
    }

    fn value(&self, long: &str) -> Option<&'a str> {
        self.0
            .iter()
            .find(|(name, _)| *name == long)
            .and_then(|(_, value)| *value)
    }

    fn path(&self, long: &str) -> Option<PathBuf> {
        self.value(long).map(PathBuf::from)
    }
}

/// The arguments still to read, as text.
struct Words<'a>(std::slice::Iter<'a, OsString>);

impl<'a> Words<'a> {
    /// The next argument; `Some(None)` when there is none, `None` when it is not UTF-8.
    fn next(&mut self) -> Option<Option<&'a str>> {
        match self.0.next() {
            None => Some(None),
            Some(arg) => arg.to_str().map(Some),
        }
    }

    /// Reads flags of `tables` up to the first argument that is not one, and returns it
    /// (`None` inside when the arguments ended first).
    fn flags(&mut self, tables: &[&[Flag]], seen: &mut Seen<'a>) -> Option<Option<&'a str>> {
        loop {
            let Some(word) = self.next()? else {
                return Some(None);
            };
            if word == "-" || word == "--" {
                return None;
            }
            let body = if let Some(body) = word.strip_prefix("--") {
                body
            } else if let Some(body) = word.strip_prefix('-') {
                body
            } else {
                return Some(Some(word));
            };
            let (name, inline) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (body, None),
            };
            let short = word.len() == 2 && !word.starts_with("--");
            let flag = tables.iter().flat_map(|t| t.iter()).find(|flag| {
                if short {
                    flag.short
                        .is_some_and(|c| name.len() == 1 && name.starts_with(c))
                } else {
                    // `--name`, or runc's `-name`; never `-n=value` or `--n`.
                    name.len() > 1 && flag.long == name
                }
            })?;
            if seen.has(flag.long) {
                return None;
            }
            let value = match (flag.value, inline) {
                (false, None) => None,
                (false, Some(_)) => return None,
                (true, Some(value)) => Some(value),
                (true, None) => Some(self.next()??),
            };
            if value.is_some_and(|v| v.is_empty() || v.starts_with('-')) {
                return None;
            }
            seen.0.push((flag.long, value));
        }
    }

    /// A positional argument that clap cannot take for a flag; `None` for anything else.
    fn positional(word: Option<&'a str>) -> Option<&'a str> {
        word.filter(|w| !w.is_empty() && !w.starts_with('-'))
    }

    /// `Some(())` when no argument is left.
    fn end(&mut self) -> Option<()> {
        self.0.as_slice().is_empty().then_some(())
    }
}

/// The command line read in the plain shape, `args[0]` being the program; `None` when
/// it is not in that shape or names another command.
pub(super) fn parse(args: &[OsString]) -> Option<Cli> {
    let mut words = Words(args.get(1..)?.iter());
    let mut globals = Seen::default();
    let name = words.flags(&[GLOBAL], &mut globals)??;
    let global = Global {
        root: globals.path("root"),
        log: globals.path("log"),
        log_format: match globals.value("log-format") {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(_) => return None,
        },
        debug: globals.has("debug"),
        systemd_cgroup: globals.has("systemd-cgroup"),
        rootless: globals.value("rootless").map(str::to_owned),
        config: globals.path("config"),
        version: false,
    };
    let tables: &[&[Flag]] = match name {
        "start" | "state" | "pause" | "resume" => &[],
        "kill" => &[KILL],
        "delete" => &[DELETE],
        "create" => &[CREATE],
        "run" => &[CREATE, RUN],
        _ => return None,
    };
    let mut own = Seen::default();
    let id = Words::positional(words.flags(tables, &mut own)?)?.to_owned();
    let command = match name {
        "start" => Command::Start(Id { id }),
        "state" => Command::State(Id { id }),
        "pause" => Command::Pause(Id { id }),
        "resume" => Command::Resume(Id { id }),
        "kill" => {
            let signal = match words.next()? {
                None => "SIGTERM".to_owned(),
                word => Words::positional(word)?.to_owned(),
            };
            Command::Kill(Kill {
                all: own.has("all"),
                id,
                signal,
            })
        }
        "delete" => Command::Delete(Delete {
            force: own.has("force"),
            id,
        }),
        "create" => Command::Create(create(&own, id)?),
        _ => Command::Run(Box::new(Run {
            create: create(&own, id)?,
            detach: own.has("detach"),
            keep: own.has("keep"),
            no_subreaper: own.has("no-subreaper"),
        })),
    };
    words.end()?;
    Some(Cli {
        global,
        command: Some(command),
    })
}

/// [`Create`] from its flags; `None` for a `--preserve-fds` that is not a plain number.
fn create(own: &Seen<'_>, id: String) -> Option<Create> {
    let preserve_fds = match own.value("preserve-fds") {
        None => 0,
        Some(n) if n.bytes().all(|b| b.is_ascii_digit()) => n.parse().ok()?,
        Some(_) => return None,
    };
    Some(Create {
        bundle: own.path("bundle").unwrap_or_else(|| PathBuf::from(".")),
        pid_file: own.path("pid-file"),
        console_socket: own.path("console-socket"),
        pidfd_socket: own.path("pidfd-socket"),
        preserve_fds,
        no_pivot: own.has("no-pivot"),
        no_new_keyring: own.has("no-new-keyring"),
        id,
    })
}
