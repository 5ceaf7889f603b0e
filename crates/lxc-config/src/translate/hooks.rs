//! `hooks`: with a monitor, every list is the runtime's to run ([`RuntimeHooks`]);
//! without one, LXC runs the ones it has a point for (`lxc.hook.pre-mount`,
//! `lxc.hook.mount`, `lxc.hook.start`) and the runtime runs `poststart` and `poststop`.

use std::path::Path;

use oci_spec::runtime::Hook;
use proxcage_oci::oci_spec;

use super::{invalid, unsupported, Builder, RuntimeHooks};
use crate::error::TranslateError;

pub(super) fn hooks(b: &mut Builder<'_>) -> Result<RuntimeHooks, TranslateError> {
    let Some(hooks) = b.spec.hooks().clone() else {
        return Ok(RuntimeHooks::default());
    };
    #[allow(deprecated)]
    let prestart = hooks.prestart().clone();
    if b.paths.monitored {
        return monitored(&hooks, prestart);
    }
    let lxc_hooks = [
        ("prestart", prestart, "lxc.hook.pre-mount"),
        (
            "createRuntime",
            hooks.create_runtime().clone(),
            "lxc.hook.pre-mount",
        ),
        (
            "createContainer",
            hooks.create_container().clone(),
            "lxc.hook.mount",
        ),
        (
            "startContainer",
            hooks.start_container().clone(),
            "lxc.hook.start",
        ),
    ];
    let mut any = false;
    for (name, list, key) in lxc_hooks {
        for (i, hook) in list.iter().flatten().enumerate() {
            let field = format!("hooks.{name}[{i}]");
            let value = lxc_hook(&field, hook, key)?;
            b.push(&field, key, value)?;
            any = true;
        }
    }
    if any {
        b.push("hooks", "lxc.hook.version", "1")?;
    }
    Ok(RuntimeHooks {
        poststart: hooks.poststart().clone().unwrap_or_default(),
        poststop: hooks.poststop().clone().unwrap_or_default(),
        ..RuntimeHooks::default()
    })
}

/// Every list for the runtime, `prestart` run as the first `createRuntime` hooks.
fn monitored(
    hooks: &oci_spec::runtime::Hooks,
    prestart: Option<Vec<Hook>>,
) -> Result<RuntimeHooks, TranslateError> {
    for (name, list) in [
        ("prestart", &prestart),
        ("createRuntime", hooks.create_runtime()),
        ("createContainer", hooks.create_container()),
        ("startContainer", hooks.start_container()),
        ("poststart", hooks.poststart()),
        ("poststop", hooks.poststop()),
    ] {
        for (i, hook) in list.iter().flatten().enumerate() {
            if hook.timeout().is_some_and(|t| t <= 0) {
                return Err(invalid(
                    format!("hooks.{name}[{i}].timeout"),
                    "must be positive",
                ));
            }
        }
    }
    let list = |l: &Option<Vec<Hook>>| l.clone().unwrap_or_default();
    Ok(RuntimeHooks {
        create_runtime: [list(&prestart), list(hooks.create_runtime())].concat(),
        create_container: list(hooks.create_container()),
        start_container: list(hooks.start_container()),
        poststart: list(hooks.poststart()),
        poststop: list(hooks.poststop()),
    })
}

/// A shell word for `sh -c`: LXC runs hooks through `/bin/sh -c`.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The value of `key` (an `lxc.hook.*` key) that runs `hook`.
fn lxc_hook(field: &str, hook: &Hook, key: &str) -> Result<String, TranslateError> {
    let path = hook
        .path()
        .to_str()
        .ok_or_else(|| invalid(format!("{field}.path"), "not UTF-8"))?;
    let args = hook.args().clone().unwrap_or_default();
    if let Some(arg0) = args.first() {
        let base = Path::new(path)
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or("");
        if arg0 != path && arg0 != base {
            return Err(unsupported(
                format!("{field}.args[0]"),
                format!("LXC runs hooks through sh, which cannot set argv[0] to {arg0:?}; use the path or its file name"),
            ));
        }
    }
    if key == "lxc.hook.start" {
        // LXC checks that a start hook's value is a file in the container and
        // execs it with no arguments: only a bare path is expressible.
        if args.len() > 1 || hook.env().is_some() || hook.timeout().is_some() {
            return Err(unsupported(
                field,
                "LXC runs a start hook as a bare path inside the container: no arguments, env or timeout",
            ));
        }
        if path.contains(char::is_whitespace) {
            return Err(unsupported(
                format!("{field}.path"),
                "LXC start hooks cannot have blanks in their path",
            ));
        }
        return Ok(path.to_string());
    }
    let mut words = Vec::new();
    if let Some(t) = hook.timeout() {
        if t <= 0 {
            return Err(invalid(format!("{field}.timeout"), "must be positive"));
        }
        words.push(format!("timeout {t}"));
    }
    if let Some(env) = hook.env() {
        words.push("env -i".into());
        words.extend(env.iter().map(|e| shell_quote(e)));
    }
    words.push(shell_quote(path));
    words.extend(args.iter().skip(1).map(|a| shell_quote(a)));
    // LXC itself runs `exec <value>` through /bin/sh -c.
    Ok(words.join(" "))
}
