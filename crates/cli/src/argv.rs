//! runc (through its CLI library) accepts long flags with a single dash: `-root /x`,
//! `-bundle=.`. clap does not, so such arguments are rewritten to the double-dash form
//! before parsing: only names that are long flags where they appear, and only up to the
//! first positional argument of the subcommand, after which everything is the
//! container's (an `exec` command line keeps its `-la`).

use std::ffi::OsString;

use clap::CommandFactory;

use crate::args::Cli;

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
}

pub fn normalize(args: Vec<OsString>) -> Vec<OsString> {
    let cli = Cli::command();
    let mut scope = Scope::default();
    scope.add(&cli, false);
    let mut out = Vec::with_capacity(args.len());
    let mut iter = args.into_iter();
    if let Some(program) = iter.next() {
        out.push(program);
    }
    let mut in_subcommand = false;
    let mut expect_value = false;
    while let Some(arg) = iter.next() {
        if expect_value {
            expect_value = false;
            out.push(arg);
            continue;
        }
        let Some(text) = arg.to_str().map(str::to_string) else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            out.push(arg);
            out.extend(iter);
            break;
        }
        if let Some(body) = text.strip_prefix("--") {
            let (name, inline) = split_value(body);
            expect_value = !inline && scope.long(name) == Some(true);
            out.push(arg);
        } else if let Some(body) = text.strip_prefix('-').filter(|b| !b.is_empty()) {
            let (name, inline) = split_value(body);
            match scope.long(name) {
                Some(takes_value) if name.len() > 1 => {
                    expect_value = takes_value && !inline;
                    out.push(format!("-{text}").into());
                }
                _ => {
                    // A short flag or a cluster: `-b DIR` takes the next argument.
                    let mut chars = body.chars();
                    if let (Some(c), None) = (chars.next(), chars.next()) {
                        expect_value = scope.shorts_with_value.contains(&c);
                    }
                    out.push(arg);
                }
            }
        } else if !in_subcommand {
            in_subcommand = true;
            if let Some(sub) = cli.find_subcommand(&text) {
                let mut sub_scope = Scope::default();
                sub_scope.add(&cli, true);
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
        normalize(args.iter().map(OsString::from).collect())
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
}
