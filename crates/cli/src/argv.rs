//! From argv to [`Cli`].
//!
//! runc (through its CLI library) accepts long flags with a single dash: `-root /x`,
//! `-bundle=.`. clap does not, so such arguments are rewritten to the double-dash form
//! before parsing: only names that are long flags where they appear, and only up to the
//! first positional argument of the subcommand, after which everything is the
//! container's (an `exec` command line keeps its `-la`).
//!
//! The lifecycle commands in their plain shape are read without clap ([`plain`]). The
//! other runtime commands a shim sends (`exec`, `ps`, `list`), and lifecycle commands in
//! any other shape, are parsed by a clap command that holds only the global flags and
//! that one subcommand. Building all of proxcage's command line took
//! nine tenths of the instructions of a `start` or `state` of its own. The structs are
//! the same, so is the result: anything the small command does not accept (help, a
//! mistake, another command) is parsed again by the whole command line, which also
//! words the error.

use std::ffi::OsString;

use clap::{Args, CommandFactory, FromArgMatches};

use crate::args::{Cli, Create, Delete, Exec, Global, Id, Kill, List, Ps, Run};

mod plain;

/// Parses proxcage's command line, `args[0]` being the program.
pub fn parse(args: Vec<OsString>) -> Result<Cli, clap::Error> {
    if let Some(cli) = plain::parse(&args).or_else(|| parse_scoped(&args)) {
        return Ok(cli);
    }
    let full = Cli::command();
    let args = normalize(args, &full);
    Cli::from_arg_matches(&full.try_get_matches_from(args)?)
}

/// The parse by the global flags and the named subcommand alone; `None` when that is not
/// a runtime command, or when the small command refuses the arguments.
fn parse_scoped(args: &[OsString]) -> Option<Cli> {
    let top = top_level();
    let name = subcommand_name(args, &top)?;
    let cmd = top.subcommand(runtime_subcommand(&name)?);
    let args = normalize(args.to_vec(), &cmd);
    let matches = cmd.try_get_matches_from(args).ok()?;
    Cli::from_arg_matches(&matches).ok()
}

/// The top of the command line without its subcommands: the global flags and the
/// settings of [`Cli`]'s `#[command]` that shape parsing.
fn top_level() -> clap::Command {
    Global::augment_args(
        clap::Command::new("proxcage")
            .disable_version_flag(true)
            .subcommand_required(false)
            .arg_required_else_help(true),
    )
}

/// The subcommand a shim sends, named as in [`crate::args::Command`], with its flags.
fn runtime_subcommand(name: &str) -> Option<clap::Command> {
    use clap::Command as C;
    Some(match name {
        "create" => Create::augment_args(C::new("create")),
        "start" => Id::augment_args(C::new("start")),
        "state" => Id::augment_args(C::new("state")),
        "pause" => Id::augment_args(C::new("pause")),
        "resume" => Id::augment_args(C::new("resume")),
        "kill" => Kill::augment_args(C::new("kill")),
        "delete" => Delete::augment_args(C::new("delete")),
        "run" => Run::augment_args(C::new("run")),
        "exec" => Exec::augment_args(C::new("exec")),
        "ps" => Ps::augment_args(C::new("ps")),
        "list" => List::augment_args(C::new("list")),
        _ => return None,
    })
}

/// The first argument that is neither a global flag nor its value: the subcommand's name.
fn subcommand_name(args: &[OsString], top: &clap::Command) -> Option<String> {
    let mut scope = Scope::default();
    scope.add(top, false);
    let mut expect_value = false;
    for arg in args.iter().skip(1) {
        if std::mem::take(&mut expect_value) {
            continue;
        }
        let text = arg.to_str()?;
        if text == "--" {
            return None;
        }
        match scope.flag(text) {
            Some(flag) => expect_value = flag.value_follows,
            None => return Some(text.to_owned()),
        }
    }
    None
}

#[derive(Default)]
struct Scope {
    /// Long names, and whether each takes a value.
    longs: Vec<(String, bool)>,
    /// Short flags that take a value (`-b DIR`).
    shorts_with_value: Vec<char>,
}

impl Scope {
    fn add(&mut self, cmd: &clap::Command, only_global: bool) {
        for arg in cmd.get_arguments() {
            if only_global && !arg.is_global_set() {
                continue;
            }
            let takes_value = arg.get_action().takes_values();
            if let Some(long) = arg.get_long() {
                self.longs.push((long.to_string(), takes_value));
            }
            if let (Some(short), true) = (arg.get_short(), takes_value) {
                self.shorts_with_value.push(short);
            }
        }
    }

    fn long(&self, name: &str) -> Option<bool> {
        self.longs.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// How `text` reads here: `None` for a positional argument (or `--`), else as a flag.
    fn flag(&self, text: &str) -> Option<Flag> {
        if text == "--" {
            return None;
        }
        if let Some(body) = text.strip_prefix("--") {
            let (name, inline) = split_value(body);
            return Some(Flag {
                single_dash_long: false,
                value_follows: !inline && self.long(name) == Some(true),
            });
        }
        let body = text.strip_prefix('-').filter(|b| !b.is_empty())?;
        let (name, inline) = split_value(body);
        Some(match self.long(name) {
            Some(takes_value) if name.len() > 1 => Flag {
                single_dash_long: true,
                value_follows: takes_value && !inline,
            },
            // A short flag or a cluster: `-b DIR` takes the next argument.
            _ => {
                let mut chars = body.chars();
                Flag {
                    single_dash_long: false,
                    value_follows: matches!(
                        (chars.next(), chars.next()),
                        (Some(c), None) if self.shorts_with_value.contains(&c)
                    ),
                }
            }
        })
    }
}

struct Flag {
    /// `-root`: a long flag written with one dash, as runc's CLI library accepts.
    single_dash_long: bool,
    /// The next argument is the flag's value.
    value_follows: bool,
}

/// Rewrites `args` (`args[0]` being the program) for clap, with `cli` the command line
/// they are parsed by.
pub fn normalize(args: Vec<OsString>, cli: &clap::Command) -> Vec<OsString> {
    let mut scope = Scope::default();
    scope.add(cli, false);
    let mut out = Vec::with_capacity(args.len());
    let mut iter = args.into_iter();
    if let Some(program) = iter.next() {
        out.push(program);
    }
    let mut in_subcommand = false;
    let mut expect_value = false;
    while let Some(arg) = iter.next() {
        if std::mem::take(&mut expect_value) {
            out.push(arg);
            continue;
        }
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            out.push(arg);
            out.extend(iter);
            break;
        }
        if let Some(flag) = scope.flag(text) {
            expect_value = flag.value_follows;
            if flag.single_dash_long {
                let text = format!("-{text}");
                out.push(text.into());
            } else {
                out.push(arg);
            }
        } else if !in_subcommand {
            in_subcommand = true;
            if let Some(sub) = cli.find_subcommand(text) {
                let mut sub_scope = Scope::default();
                sub_scope.add(cli, true);
                sub_scope.add(sub, false);
                scope = sub_scope;
            }
            out.push(arg);
        } else {
            // The first positional of the subcommand: the rest is not ours to touch.
            out.push(arg);
            out.extend(iter);
            break;
        }
    }
    out
}

fn split_value(body: &str) -> (&str, bool) {
    match body.split_once('=') {
        Some((name, _)) => (name, true),
        None => (body, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        normalize(args.iter().map(OsString::from).collect(), &Cli::command())
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn single_dash_long_flags_become_double_dash() {
        assert_eq!(
            norm(&[
                "proxcage",
                "-root",
                "/r",
                "-log-format=json",
                "create",
                "-bundle",
                "/b",
                "-pid-file=/p",
                "c1"
            ]),
            [
                "proxcage",
                "--root",
                "/r",
                "--log-format=json",
                "create",
                "--bundle",
                "/b",
                "--pid-file=/p",
                "c1"
            ]
        );
    }

    #[test]
    fn values_and_container_arguments_are_left_alone() {
        // `-root` as the value of --log is a file name, and exec's command keeps its flags.
        assert_eq!(
            norm(&["proxcage", "--log", "-root", "exec", "-t", "c1", "ls", "-root", "-la"]),
            ["proxcage", "--log", "-root", "exec", "-t", "c1", "ls", "-root", "-la"]
        );
        assert_eq!(
            norm(&["proxcage", "create", "-b", "-bundle", "c1"]),
            ["proxcage", "create", "-b", "-bundle", "c1"]
        );
        assert_eq!(
            norm(&["proxcage", "kill", "c1", "-9"]),
            ["proxcage", "kill", "c1", "-9"]
        );
    }

    #[test]
    fn global_flags_are_known_after_the_subcommand() {
        assert_eq!(
            norm(&["proxcage", "state", "-root", "/r", "c1"]),
            ["proxcage", "state", "--root", "/r", "c1"]
        );
    }

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    /// What the whole command line makes of `args`: the reference for the scoped parse.
    fn parse_full(args: &[&str]) -> Result<Cli, clap::Error> {
        let full = Cli::command();
        let args = normalize(os(args), &full);
        Cli::from_arg_matches(&full.try_get_matches_from(args)?)
    }

    #[test]
    fn runtime_commands_parse_the_same_as_by_the_whole_command_line() {
        let lines: &[&[&str]] = &[
            // containerd's shim (runc v2) and podman, as they call runc.
            &[
                "proxcage",
                "--root",
                "/run/containerd/runc/k8s.io",
                "--log",
                "/run/x/log.json",
                "--log-format",
                "json",
                "create",
                "--bundle",
                "/run/b",
                "--pid-file",
                "/run/b/init.pid",
                "--console-socket",
                "/tmp/pty.sock",
                "c1",
            ],
            &[
                "proxcage",
                "--root",
                "/r",
                "--log",
                "/l",
                "--log-format",
                "json",
                "start",
                "c1",
            ],
            &[
                "proxcage",
                "--root",
                "/r",
                "--log",
                "/l",
                "--log-format",
                "json",
                "kill",
                "c1",
                "9",
            ],
            &["proxcage", "--root", "/r", "kill", "--all", "c1", "SIGKILL"],
            &[
                "proxcage",
                "--root",
                "/r",
                "--log",
                "/l",
                "--log-format",
                "json",
                "delete",
                "--force",
                "c1",
            ],
            &["proxcage", "--root", "/r", "state", "c1"],
            &[
                "proxcage",
                "--root",
                "/r",
                "exec",
                "--process",
                "/tmp/p.json",
                "--detach",
                "--pid-file",
                "/p",
                "c1",
            ],
            &[
                "proxcage", "--root", "/r", "exec", "-t", "-e", "A=1", "--cwd", "/", "-u", "0:0",
                "c1", "ls", "-la", "--root",
            ],
            &["proxcage", "--root", "/r", "ps", "--format", "json", "c1"],
            &["proxcage", "ps", "c1", "-o", "pid"],
            &["proxcage", "--root", "/r", "pause", "c1"],
            &["proxcage", "--root", "/r", "resume", "c1"],
            &["proxcage", "--root", "/r", "list", "-q"],
            &["proxcage", "list", "--format=json"],
            &[
                "proxcage",
                "--systemd-cgroup",
                "--debug",
                "run",
                "--bundle",
                "/b",
                "-d",
                "--keep",
                "c1",
            ],
            &[
                "proxcage",
                "--rootless",
                "auto",
                "--config",
                "/c.toml",
                "run",
                "--preserve-fds",
                "2",
                "--no-subreaper",
                "c1",
            ],
            // runc's single-dash long flags, and global flags after the subcommand.
            &[
                "proxcage",
                "-root",
                "/r",
                "-log-format=json",
                "create",
                "-bundle",
                "/b",
                "-pid-file=/p",
                "c1",
            ],
            &["proxcage", "state", "-root", "/r", "c1"],
            &["proxcage", "delete", "c1", "--root", "/r"],
            &[
                "proxcage", "--log", "/l", "exec", "-t", "c1", "ls", "-root", "-la",
            ],
        ];
        for (i, line) in lines.iter().enumerate() {
            let scoped = parse_scoped(&os(line))
                .unwrap_or_else(|| panic!("the scoped parse refused {line:?}"));
            let full = parse_full(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            assert_eq!(format!("{scoped:?}"), format!("{full:?}"), "{line:?}");
            // The lifecycle commands as shims send them are read without clap.
            if [0, 1, 2, 3, 4, 5, 10, 11, 14, 15, 16].contains(&i) {
                let plain = plain::parse(&os(line))
                    .unwrap_or_else(|| panic!("the plain reading refused {line:?}"));
                assert_eq!(format!("{plain:?}"), format!("{full:?}"), "{line:?}");
            }
        }
    }

    #[test]
    fn the_plain_reading_leaves_what_is_in_doubt_to_clap() {
        let lines: &[&[&str]] = &[
            &["proxcage"],
            &["proxcage", "--help"],
            &["proxcage", "-v"],
            &["proxcage", "start", "--help"],
            &["proxcage", "start"],
            &["proxcage", "start", "c1", "c2"],
            &["proxcage", "start", "--", "c1"],
            &["proxcage", "start", "-"],
            &["proxcage", "start", ""],
            &["proxcage", "--debug", "--debug", "state", "c1"],
            &["proxcage", "--root", "state", "c1"],
            &["proxcage", "--root=", "state", "c1"],
            &["proxcage", "--root", "-r", "state", "c1"],
            &["proxcage", "--log-format", "xml", "state", "c1"],
            &["proxcage", "--debug=true", "state", "c1"],
            &["proxcage", "state", "--root", "/r", "c1"],
            &["proxcage", "delete", "c1", "--force"],
            &["proxcage", "delete", "-ff", "c1"],
            &["proxcage", "kill", "-af", "c1"],
            &["proxcage", "kill", "c1", "-9"],
            &["proxcage", "kill", "c1", "9", "x"],
            &["proxcage", "create", "-b/b", "c1"],
            &["proxcage", "create", "-b=/b", "c1"],
            &["proxcage", "create", "--b", "/b", "c1"],
            &["proxcage", "create", "--preserve-fds", "+2", "c1"],
            &["proxcage", "create", "--preserve-fds", "x", "c1"],
            &["proxcage", "run", "--all", "c1"],
            &["proxcage", "creat", "c1"],
            &["proxcage", "exec", "c1", "ls"],
            &["proxcage", "health"],
        ];
        for line in lines {
            assert!(plain::parse(&os(line)).is_none(), "{line:?}");
            let ours = parse(os(line)).map(|cli| format!("{cli:?}"));
            let full = parse_full(line).map(|cli| format!("{cli:?}"));
            match (ours, full) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{line:?}"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{line:?}"),
                (a, b) => panic!("{line:?}: {a:?} against {b:?}"),
            }
        }
        use std::os::unix::ffi::OsStringExt;
        let not_utf8 = vec![
            OsString::from("proxcage"),
            OsString::from("start"),
            OsString::from_vec(vec![b'c', 0xff]),
        ];
        assert!(plain::parse(&not_utf8).is_none());
    }

    #[test]
    fn what_the_scoped_parse_refuses_gets_the_whole_command_lines_answer() {
        let lines: &[&[&str]] = &[
            &["proxcage", "--help"],
            &["proxcage", "create", "--help"],
            &["proxcage", "start"],
            &["proxcage", "start", "c1", "c2"],
            &["proxcage", "kill", "--bogus", "c1"],
            &["proxcage", "--log-format", "xml", "state", "c1"],
            &["proxcage", "list", "--format", "yaml"],
            &["proxcage", "creat", "c1"],
            &["proxcage", "create", "-b", "-bundle", "c1"],
            &["proxcage", "kill", "c1", "-9"],
            &["proxcage", "--log", "-root", "exec", "-t", "c1", "ls"],
            &["proxcage", "--version"],
        ];
        for line in lines {
            assert!(parse_scoped(&os(line)).is_none(), "{line:?}");
            let ours = parse(os(line)).map(|cli| format!("{cli:?}"));
            let full = parse_full(line).map(|cli| format!("{cli:?}"));
            match (ours, full) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{line:?}"),
                (Err(a), Err(b)) => {
                    assert_eq!(a.kind(), b.kind(), "{line:?}");
                    assert_eq!(a.to_string(), b.to_string(), "{line:?}");
                }
                (a, b) => panic!("{line:?}: {a:?} against {b:?}"),
            }
        }
        // Commands outside the runtime's are left to the whole command line.
        assert!(parse_scoped(&os(&["proxcage", "health", "--repair"])).is_none());
        assert!(parse(os(&["proxcage", "health", "--repair"])).is_ok());
    }

    #[test]
    fn the_scoped_command_line_has_the_whole_ones_flags_and_settings() {
        let full = Cli::command();
        let top = top_level();
        let ids = |cmd: &clap::Command| -> Vec<String> {
            cmd.get_arguments()
                .map(|a| a.get_id().to_string())
                .collect()
        };
        assert_eq!(ids(&top), ids(&full));
        assert_eq!(
            top.is_disable_version_flag_set(),
            full.is_disable_version_flag_set()
        );
        assert_eq!(
            top.is_subcommand_required_set(),
            full.is_subcommand_required_set()
        );
        assert_eq!(
            top.is_arg_required_else_help_set(),
            full.is_arg_required_else_help_set()
        );
        for name in [
            "create", "start", "state", "pause", "resume", "kill", "delete", "run", "exec", "ps",
            "list",
        ] {
            let scoped = runtime_subcommand(name).unwrap();
            let whole = full.find_subcommand(name).unwrap();
            assert_eq!(ids(&scoped), ids(whole), "{name}");
        }
    }

    /// Words a command line is made of: every flag of the runtime commands in each
    /// spelling, values that look like flags, subcommand names, and ids.
    const WORDS: &[&str] = &[
        "--root",
        "-root",
        "--root=/r",
        "/r",
        "--log",
        "-log",
        "/l",
        "--log-format",
        "json",
        "text",
        "xml",
        "--log-format=json",
        "--debug",
        "-debug",
        "--systemd-cgroup",
        "--rootless",
        "auto",
        "--config",
        "/c.toml",
        "-v",
        "--version",
        "--help",
        "-h",
        "create",
        "start",
        "state",
        "kill",
        "delete",
        "run",
        "exec",
        "ps",
        "pause",
        "resume",
        "list",
        "features",
        "health",
        "spec",
        "--bundle",
        "-bundle",
        "-b",
        "/b",
        "--bundle=/b",
        "--pid-file",
        "/p",
        "--console-socket",
        "/s",
        "--pidfd-socket",
        "--preserve-fds",
        "2",
        "x",
        "--no-pivot",
        "--no-new-keyring",
        "-d",
        "--detach",
        "--keep",
        "--no-subreaper",
        "-a",
        "--all",
        "9",
        "SIGKILL",
        "-9",
        "-f",
        "--force",
        "--format",
        "table",
        "-q",
        "-t",
        "--tty",
        "-e",
        "A=1",
        "--env",
        "--cwd",
        "-u",
        "0:0",
        "--user",
        "-g",
        "5",
        "--cap",
        "CAP_KILL",
        "--process",
        "--ignore-paused",
        "-p",
        "ls",
        "-la",
        "--",
        "-",
        "c1",
        "c2",
        "",
    ];

    /// Global flags and their values, in every spelling.
    const GLOBAL_WORDS: &[&str] = &[
        "--root",
        "-root",
        "--root=/r",
        "/r",
        "--log",
        "/l",
        "--log-format",
        "json",
        "xml",
        "-log-format=json",
        "--debug",
        "--systemd-cgroup",
        "--rootless",
        "auto",
        "--config",
        "/c.toml",
    ];
    const RUNTIME_COMMANDS: &[&str] = &[
        "create", "start", "state", "kill", "delete", "run", "exec", "ps", "pause", "resume",
        "list",
    ];

    /// Global flags with a value each could have (`None`: a switch).
    const GLOBAL_FLAGS: &[(&str, Option<&str>)] = &[
        ("root", Some("/r")),
        ("log", Some("/l")),
        ("log-format", Some("json")),
        ("log-format", Some("text")),
        ("debug", None),
        ("systemd-cgroup", None),
        ("rootless", Some("auto")),
        ("config", Some("/c.toml")),
    ];

    /// A command's flag: its long name, its one-letter name if it has one, and a value
    /// it could take (`None`: a switch).
    type FlagSpec = (&'static str, Option<char>, Option<&'static str>);

    /// The lifecycle commands' flags.
    const LIFECYCLE_FLAGS: &[(&str, &[FlagSpec])] = &[
        ("start", &[]),
        ("state", &[]),
        ("pause", &[]),
        ("resume", &[]),
        ("kill", &[("all", Some('a'), None)]),
        ("delete", &[("force", Some('f'), None)]),
        ("create", CREATE_FLAGS),
        (
            "run",
            &[
                ("bundle", Some('b'), Some("/b")),
                ("pid-file", None, Some("/p")),
                ("preserve-fds", None, Some("3")),
                ("no-pivot", None, None),
                ("detach", Some('d'), None),
                ("keep", None, None),
                ("no-subreaper", None, None),
            ],
        ),
    ];
    const CREATE_FLAGS: &[FlagSpec] = &[
        ("bundle", Some('b'), Some("/b")),
        ("pid-file", None, Some("/p")),
        ("console-socket", None, Some("/s")),
        ("pidfd-socket", None, Some("/f")),
        ("preserve-fds", None, Some("2")),
        ("no-pivot", None, None),
        ("no-new-keyring", None, None),
    ];

    /// One flag in one of the spellings runc's command line takes: `--name value`,
    /// `-name value`, `--name=value`, `-name=value`, `-n value`.
    fn spell(
        line: &mut Vec<String>,
        long: &str,
        short: Option<char>,
        value: Option<&str>,
        how: u8,
    ) {
        match (how % 5, value) {
            (4, value) if short.is_some() => {
                line.push(format!("-{}", short.unwrap()));
                line.extend(value.map(str::to_owned));
            }
            (2, Some(value)) => line.push(format!("--{long}={value}")),
            (3, Some(value)) => line.push(format!("-{long}={value}")),
            (1 | 3, value) => {
                line.push(format!("-{long}"));
                line.extend(value.map(str::to_owned));
            }
            (_, value) => {
                line.push(format!("--{long}"));
                line.extend(value.map(str::to_owned));
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// Lifecycle command lines as shims write them, every flag in every spelling:
        /// the plain reading takes each one that has no flag twice, and reads it as the
        /// whole command line does.
        #[test]
        fn the_plain_reading_never_reads_a_line_otherwise(
            globals in proptest::collection::vec((0..GLOBAL_FLAGS.len(), 0..5u8), 0..4),
            command in 0..LIFECYCLE_FLAGS.len(),
            flags in proptest::collection::vec((0..8usize, 0..5u8), 0..4),
            signal in proptest::option::of(proptest::sample::select(&["9", "KILL", "SIGKILL"][..])),
            spoiler in proptest::option::of((0..12usize, proptest::sample::select(WORDS))),
        ) {
            let mut line = vec!["proxcage".to_string()];
            let mut twice = false;
            let mut seen = Vec::new();
            for (i, how) in globals {
                let (long, value) = GLOBAL_FLAGS[i];
                twice |= seen.contains(&long);
                seen.push(long);
                spell(&mut line, long, None, value, how);
            }
            let (name, table) = LIFECYCLE_FLAGS[command];
            line.push(name.to_string());
            for (i, how) in flags {
                if let Some(&(long, short, value)) = table.get(i % table.len().max(1)) {
                    twice |= seen.contains(&long);
                    seen.push(long);
                    spell(&mut line, long, short, value, how);
                }
            }
            line.push("c1".to_string());
            if name == "kill" {
                line.extend(signal.map(str::to_owned));
            }
            // Now and then a word anywhere, which may make it any line at all.
            let spoiled = spoiler.is_some();
            if let Some((at, word)) = spoiler {
                line.insert(1 + at % line.len(), word.to_string());
            }
            let line: Vec<&str> = line.iter().map(String::as_str).collect();
            let full = parse_full(&line);
            match plain::parse(&os(&line)) {
                Some(plain) => {
                    let full = full.unwrap_or_else(|e| {
                        panic!("{line:?}: the plain reading took it, the whole one said {e}")
                    });
                    proptest::prop_assert_eq!(format!("{plain:?}"), format!("{full:?}"), "{:?}", line);
                }
                None => proptest::prop_assert!(
                    twice || spoiled,
                    "{:?}: the plain reading refused it; the whole one reads {:?}", line, full
                ),
            }
        }

        /// Whatever the scoped parse accepts, the whole command line reads the same way.
        #[test]
        fn the_scoped_parse_never_reads_a_line_otherwise(
            globals in proptest::collection::vec(proptest::sample::select(GLOBAL_WORDS), 0..4),
            command in proptest::sample::select(RUNTIME_COMMANDS),
            rest in proptest::collection::vec(proptest::sample::select(WORDS), 0..6),
        ) {
            let mut line = vec!["proxcage"];
            line.extend(globals);
            line.push(command);
            line.extend(rest);
            if let Some(scoped) = parse_scoped(&os(&line)) {
                let full = parse_full(&line).unwrap_or_else(|e| {
                    panic!("{line:?}: the scoped parse accepted it, the whole one said {e}")
                });
                proptest::prop_assert_eq!(format!("{scoped:?}"), format!("{full:?}"), "{:?}", line);
            } else if let Ok(Cli { command: Some(command), .. }) = parse_full(&line) {
                // A runtime command the whole command line reads must not be refused: it
                // would still be parsed right, but at the old cost.
                use crate::args::Command as C;
                let runtime = matches!(
                    command,
                    C::Create(_) | C::Start(_) | C::State(_) | C::Kill(_) | C::Delete(_)
                        | C::Run(_) | C::Exec(_) | C::Ps(_) | C::Pause(_) | C::Resume(_)
                        | C::List(_)
                );
                proptest::prop_assert!(!runtime, "{:?}: refused, whole one reads {:?}", line, command);
            }
        }
    }
}
