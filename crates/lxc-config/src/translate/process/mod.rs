//! `process`: the command (through proxcage-init, or LXC's own keys without it), the
//! user, the capabilities, the rlimits, the security labels and the console.

mod capabilities;
mod rlimits;
mod user;

use std::path::Path;

use oci_spec::runtime::Process;
use proxcage_oci::oci_spec;

use super::{invalid, unsupported, Builder};
use crate::error::TranslateError;
use crate::init::{INIT_PATH, PROCESS_FILE_PATH};
use crate::process::{CapabilitySets, ProcessFile, CONTROL_SOCKET_PATH};

/// What the container runs: `process.args`, `process.env` and `process.cwd`, checked.
struct Command {
    args: Vec<String>,
    env: Vec<String>,
    /// As given: empty means `/`.
    cwd: String,
}

pub(super) fn process(b: &mut Builder<'_>) -> Result<(), TranslateError> {
    let Some(process) = b.spec.process().clone() else {
        return Err(invalid("process", "a container to start needs a process"));
    };
    refuse_unsupported(&process)?;
    let command = command(&process)?;
    let sets = capabilities::init_sets(b, &process)?;
    if b.paths.init {
        with_init(b, &process, command, sets)?;
    } else {
        without_init(b, &process, command)?;
    }
    user::lxc_keys(b, &process)?;
    capabilities::keep(b, &process)?;
    rlimits::rlimits(b, &process)?;
    security(b, &process)?;
    if process.terminal() != Some(true) || b.paths.monitored {
        b.push("process.terminal", "lxc.console.path", "none")?;
    }
    Ok(())
}

fn refuse_unsupported(process: &Process) -> Result<(), TranslateError> {
    let fields = [
        (
            "process.ioPriority",
            process.io_priority().is_some(),
            "LXC has no key for the I/O priority",
        ),
        (
            "process.scheduler",
            process.scheduler().is_some(),
            "LXC has no key for the scheduling policy",
        ),
        (
            "process.execCPUAffinity",
            process.exec_cpu_affinity().is_some(),
            "LXC has no key for the CPU affinity",
        ),
        (
            "process.commandLine",
            process.command_line().is_some(),
            "commandLine is for Windows containers",
        ),
    ];
    match fields.into_iter().find(|(_, set, _)| *set) {
        Some((field, _, reason)) => Err(unsupported(field, reason)),
        None => Ok(()),
    }
}

fn command(process: &Process) -> Result<Command, TranslateError> {
    let args = process.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(invalid("process.args", "there is no command to run"));
    }
    let env = process.env().clone().unwrap_or_default();
    for (i, var) in env.iter().enumerate() {
        if !var.contains('=') {
            return Err(invalid(
                format!("process.env[{i}]"),
                format!("{var:?} is not NAME=VALUE"),
            ));
        }
    }
    let cwd = process
        .cwd()
        .to_str()
        .ok_or_else(|| invalid("process.cwd", "not UTF-8"))?
        .to_string();
    if !cwd.is_empty() && !cwd.starts_with('/') {
        return Err(invalid("process.cwd", format!("{cwd:?} is not absolute")));
    }
    Ok(Command { args, env, cwd })
}

/// proxcage-init as `lxc.init.cmd`, bind-mounted with its process file (and, monitored,
/// the run directory it reaches its monitor through).
fn with_init(
    b: &mut Builder<'_>,
    process: &Process,
    command: Command,
    capabilities: Option<CapabilitySets>,
) -> Result<(), TranslateError> {
    let file = ProcessFile {
        args: command.args,
        env: command.env,
        cwd: if command.cwd.is_empty() {
            "/".into()
        } else {
            command.cwd
        },
        umask: process.user().umask(),
        no_new_privileges: process.no_new_privileges() == Some(true),
        monitored: b.paths.monitored,
        terminal: b.paths.monitored && process.terminal() == Some(true),
        // A monitored init reaches its monitor as root, then becomes the user.
        user: user::monitored_user(b.paths.monitored, process),
        capabilities,
    };
    let contents = file
        .encode()
        .map_err(|e| invalid("process", e.to_string()))?;
    let init_host = b.paths.files_dir.join("init");
    let process_host = b.paths.files_dir.join("process");
    b.host_file(init_host.clone(), crate::init::EXECUTABLE.to_vec(), 0o755);
    b.host_file(process_host.clone(), contents, 0o644);
    b.push("process.args", "lxc.init.cmd", INIT_PATH)?;
    let ro = ["bind".to_string(), "ro".to_string()];
    let init_target = Path::new(INIT_PATH.trim_start_matches('/'));
    let process_target = Path::new(PROCESS_FILE_PATH.trim_start_matches('/'));
    b.mount_entry("process.args", &init_host, init_target, "none", &ro, false)?;
    b.mount_entry(
        "process.args",
        &process_host,
        process_target,
        "none",
        &ro,
        false,
    )?;
    if b.paths.monitored {
        let run_host = b.paths.files_dir.join("run");
        let run_target = Path::new(CONTROL_SOCKET_PATH.trim_start_matches('/'))
            .parent()
            .expect("the control socket is in a directory");
        b.mount_entry("process", &run_host, run_target, "none", &ro, true)?;
    }
    Ok(())
}

/// An argument `lxc.init.cmd` passes unchanged: LXC 5.0 splits on spaces, with no quoting.
fn splits_cleanly(arg: &str) -> bool {
    !arg.is_empty()
        && !arg.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '\\')
}

/// LXC's own keys: `lxc.init.cmd`, `lxc.init.cwd` and `lxc.environment`, refusing what
/// they would change.
fn without_init(
    b: &mut Builder<'_>,
    process: &Process,
    command: Command,
) -> Result<(), TranslateError> {
    let args = command.args;
    if let Some((i, arg)) = args.iter().enumerate().find(|(_, a)| !splits_cleanly(a)) {
        return Err(unsupported(
            format!("process.args[{i}]"),
            format!("{arg:?} would be split or changed by lxc.init.cmd; use proxcage-init"),
        ));
    }
    b.push("process.args", "lxc.init.cmd", args.join(" "))?;
    if process.user().umask().is_some() {
        return Err(unsupported(
            "process.user.umask",
            "LXC has no umask key; use proxcage-init",
        ));
    }
    if !command.cwd.is_empty() {
        b.push("process.cwd", "lxc.init.cwd", command.cwd)?;
    }
    for (i, var) in command.env.into_iter().enumerate() {
        b.push(&format!("process.env[{i}]"), "lxc.environment", var)?;
    }
    Ok(())
}

/// no_new_privs, the AppArmor profile, the SELinux label and the OOM score.
fn security(b: &mut Builder<'_>, process: &Process) -> Result<(), TranslateError> {
    // With the init, no_new_privs is its job (the process file says so): LXC's key would
    // set it before the init runs just the same, but Proxmox drops that key from a CT.
    if process.no_new_privileges() == Some(true) && !b.paths.init {
        b.push("process.noNewPrivileges", "lxc.no_new_privs", "1")?;
    }
    // Without a profile, no key: LXC's default profile (Proxmox's generated one in a CT)
    // applies, never less than what the host gives its containers.
    if let Some(profile) = process
        .apparmor_profile()
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        b.push("process.apparmorProfile", "lxc.apparmor.profile", profile)?;
    }
    if let Some(label) = process.selinux_label().as_deref().filter(|l| !l.is_empty()) {
        b.push("process.selinuxLabel", "lxc.selinux.context", label)?;
    }
    if let Some(adj) = process.oom_score_adj() {
        b.push(
            "process.oomScoreAdj",
            "lxc.proc.oom_score_adj",
            adj.to_string(),
        )?;
    }
    Ok(())
}
