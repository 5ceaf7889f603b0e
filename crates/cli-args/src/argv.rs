//! From argv to [`Cli`]: clap reads the command line, after one rewrite.
//!
//! runc (through its CLI library) accepts long flags with a single dash: `-root /x`,
//! `-bundle=.`. clap does not, so such arguments are rewritten to the double-dash form
//! first: only names that are long flags where they appear, and only up to the first
//! positional argument of the subcommand, after which everything is the container's (an
//! `exec` command line keeps its `-la`). The flags are taken from the clap command
//! itself, so there is no second list of them.

use std::ffi::OsString;

use clap::{CommandFactory, FromArgMatches};

use crate::Cli;

/// Parses proxcage's command line, the first argument being the program. Help, the
/// usage errors and their wording are clap's.
pub fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let mut cli = Cli::command();
    let args = normalize(args.into_iter().map(Into::into).collect(), &cli);
    let mut matches = cli.try_get_matches_from_mut(args)?;
    Cli::from_arg_matches_mut(&mut matches).map_err(|e| e.format(&mut cli))
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
fn normalize(args: Vec<OsString>, cli: &clap::Command) -> Vec<OsString> {
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
                // A subcommand's flags are added when it is built (`defer`).
                let mut sub = sub.clone();
                sub.build();
                let mut sub_scope = Scope::default();
                sub_scope.add(cli, true);
                sub_scope.add(&sub, false);
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
mod tests;
