//! `linux.seccomp` written as an LXC version 2 seccomp profile.
//!
//! A default action of `SCMP_ACT_ALLOW` becomes a `denylist`; any other default becomes an
//! `allowlist <action>`. Rules are written under `[all]`, which LXC applies to the native
//! and the compat architectures, so `architectures` needs no section of its own.

use std::fmt::Write as _;

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};
use proxcage_oci::oci_spec;

use crate::error::TranslateError;

/// The profile text, or an error naming the field LXC cannot express.
pub(crate) fn profile(seccomp: &LinuxSeccomp) -> Result<String, TranslateError> {
    let unsupported = |field: &str, reason: &str| TranslateError::Unsupported {
        field: format!("linux.seccomp.{field}"),
        reason: reason.into(),
    };
    if seccomp.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(unsupported("flags", "LXC sets no seccomp filter flags"));
    }
    if seccomp.listener_path().is_some() {
        return Err(unsupported(
            "listenerPath",
            "LXC's notify proxy (lxc.seccomp.notify.proxy) speaks its own protocol, not the OCI seccomp agent's",
        ));
    }
    let default = seccomp.default_action();
    let mut out = String::from("2\n");
    if default == LinuxSeccompAction::ScmpActAllow {
        out.push_str("denylist\n");
    } else {
        let action = action(default, seccomp.default_errno_ret())
            .map_err(|reason| unsupported("defaultAction", &reason))?;
        let _ = writeln!(out, "allowlist {action}");
    }
    out.push_str("[all]\n");
    for (i, rule) in seccomp.syscalls().iter().flatten().enumerate() {
        let act = action(rule.action(), rule.errno_ret())
            .map_err(|reason| unsupported(&format!("syscalls[{i}].action"), &reason))?;
        let mut conditions = String::new();
        for (j, arg) in rule.args().iter().flatten().enumerate() {
            if arg.index() > 5 {
                return Err(TranslateError::Invalid {
                    field: format!("linux.seccomp.syscalls[{i}].args[{j}].index"),
                    reason: format!(
                        "{} is not a system call argument index (0..=5)",
                        arg.index()
                    ),
                });
            }
            let op = match arg.op() {
                LinuxSeccompOperator::ScmpCmpNe => "SCMP_CMP_NE",
                LinuxSeccompOperator::ScmpCmpLt => "SCMP_CMP_LT",
                LinuxSeccompOperator::ScmpCmpLe => "SCMP_CMP_LE",
                LinuxSeccompOperator::ScmpCmpEq => "SCMP_CMP_EQ",
                LinuxSeccompOperator::ScmpCmpGe => "SCMP_CMP_GE",
                LinuxSeccompOperator::ScmpCmpGt => "SCMP_CMP_GT",
                LinuxSeccompOperator::ScmpCmpMaskedEq => "SCMP_CMP_MASKED_EQ",
            };
            let _ = write!(
                conditions,
                " [{},{},{},{}]",
                arg.index(),
                arg.value(),
                op,
                arg.value_two().unwrap_or(0)
            );
        }
        for (k, name) in rule.names().iter().enumerate() {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(TranslateError::Invalid {
                    field: format!("linux.seccomp.syscalls[{i}].names[{k}]"),
                    reason: format!("{name:?} is not a system call name"),
                });
            }
            let _ = writeln!(out, "{name} {act}{conditions}");
        }
    }
    Ok(out)
}

fn action(action: LinuxSeccompAction, errno: Option<u32>) -> Result<String, String> {
    Ok(match action {
        LinuxSeccompAction::ScmpActAllow => "allow".into(),
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => "kill".into(),
        LinuxSeccompAction::ScmpActTrap => "trap".into(),
        LinuxSeccompAction::ScmpActLog => "log".into(),
        // libseccomp's default errno for SCMP_ACT_ERRNO without a value is EPERM.
        LinuxSeccompAction::ScmpActErrno => format!("errno {}", errno.unwrap_or(1)),
        LinuxSeccompAction::ScmpActKillProcess => {
            return Err(
                "SCMP_ACT_KILL_PROCESS has no LXC 5.0 action (LXC's `kill` kills the thread)"
                    .into(),
            )
        }
        LinuxSeccompAction::ScmpActTrace => return Err("SCMP_ACT_TRACE has no LXC action".into()),
        LinuxSeccompAction::ScmpActNotify => {
            return Err(
                "SCMP_ACT_NOTIFY needs an OCI seccomp agent, which LXC does not speak to".into(),
            )
        }
    })
}
