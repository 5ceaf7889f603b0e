//! `linux.seccomp` written as an LXC version 2 seccomp profile.
//!
//! A default action of `SCMP_ACT_ALLOW` becomes a `denylist`; any other default becomes an
//! `allowlist <action>`. Rules are written under `[all]`, which LXC applies to the native
//! and the compat architectures, so `architectures` needs no section of its own.

use std::fmt::Write as _;

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator, LinuxSyscall};
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
    let default = action(seccomp.default_action(), seccomp.default_errno_ret())
        .map_err(|reason| unsupported("defaultAction", &reason))?;
    let mut out = String::from("2\n");
    if default == "allow" {
        out.push_str("denylist\n");
    } else {
        let _ = writeln!(out, "allowlist {default}");
    }
    out.push_str("[all]\n");
    for (i, rule) in seccomp.syscalls().iter().flatten().enumerate() {
        let act = action(rule.action(), rule.errno_ret())
            .map_err(|reason| unsupported(&format!("syscalls[{i}].action"), &reason))?;
        let conditions = conditions(rule, i)?;
        let names = names(rule, i)?;
        // libseccomp refuses a rule that does what the default does (and LXC then refuses
        // to start); runc and crun leave such rules out, and so does this.
        if act == default {
            continue;
        }
        for name in names {
            let _ = writeln!(out, "{name} {act}{conditions}");
        }
    }
    Ok(out)
}

/// The rule's argument comparisons as LXC writes them: ` [index,value,op,valueTwo]`...
fn conditions(rule: &LinuxSyscall, i: usize) -> Result<String, TranslateError> {
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
    Ok(conditions)
}

/// The rule's system call names; a name with anything but letters, digits and `_` would
/// add a rule of its own to the profile.
fn names(rule: &LinuxSyscall, i: usize) -> Result<&[String], TranslateError> {
    for (k, name) in rule.names().iter().enumerate() {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(TranslateError::Invalid {
                field: format!("linux.seccomp.syscalls[{i}].names[{k}]"),
                reason: format!("{name:?} is not a system call name"),
            });
        }
    }
    Ok(rule.names())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn seccomp(json: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn every_action_and_comparison_lxc_has_is_written() {
        let text = profile(&seccomp(serde_json::json!({
            "defaultAction": "SCMP_ACT_LOG",
            "syscalls": [
                {"names": ["reboot"], "action": "SCMP_ACT_KILL_THREAD"},
                {"names": ["ptrace"], "action": "SCMP_ACT_TRAP"},
                {"names": ["mount", "umount2"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "args": [
                    {"index": 0, "value": 1, "op": "SCMP_CMP_NE"},
                    {"index": 1, "value": 2, "op": "SCMP_CMP_LT"},
                    {"index": 2, "value": 3, "op": "SCMP_CMP_LE"},
                    {"index": 3, "value": 4, "op": "SCMP_CMP_GE"},
                    {"index": 4, "value": 5, "op": "SCMP_CMP_GT"},
                    {"index": 5, "value": 6, "valueTwo": 7, "op": "SCMP_CMP_MASKED_EQ"}
                ]}
            ]
        })))
        .unwrap();
        assert_eq!(
            text,
            "2\nallowlist log\n[all]\nreboot kill\nptrace trap\nmount errno 1\numount2 errno 1\n\
             clone errno 38 [0,1,SCMP_CMP_NE,0] [1,2,SCMP_CMP_LT,0] [2,3,SCMP_CMP_LE,0] \
             [3,4,SCMP_CMP_GE,0] [4,5,SCMP_CMP_GT,0] [5,6,SCMP_CMP_MASKED_EQ,7]\n"
        );
    }

    #[test]
    fn rules_that_do_what_the_default_does_are_left_out() {
        let text = profile(&seccomp(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["mount"], "action": "SCMP_ACT_ERRNO"}
            ]
        })))
        .unwrap();
        assert_eq!(
            text, "2\nallowlist errno 38\n[all]\nread allow\nmount errno 1\n",
            "an errno rule with another errno than the default's stays"
        );
        let text = profile(&seccomp(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["getcwd"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["ptrace"], "action": "SCMP_ACT_KILL"}
            ]
        })))
        .unwrap();
        assert_eq!(text, "2\ndenylist\n[all]\nptrace kill\n");
        // A left-out rule is still checked: what it names could not be written anyway.
        let err = profile(&seccomp(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["read allow"], "action": "SCMP_ACT_ALLOW"}]
        })))
        .unwrap_err();
        assert_eq!(err.field(), "linux.seccomp.syscalls[0].names[0]");
    }

    #[test]
    fn what_lxc_cannot_express_is_refused_naming_the_field() {
        for (json, want) in [
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_KILL_PROCESS"}),
                "linux.seccomp.defaultAction: SCMP_ACT_KILL_PROCESS has no LXC 5.0 action",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["read"], "action": "SCMP_ACT_LOG"},
                    {"names": ["ioctl"], "action": "SCMP_ACT_NOTIFY"}
                ]}),
                "linux.seccomp.syscalls[1].action: SCMP_ACT_NOTIFY needs an OCI seccomp agent",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["read"], "action": "SCMP_ACT_ERRNO",
                     "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}
                ]}),
                "linux.seccomp.syscalls[0].args[0].index: 6 is not a system call argument index (0..=5)",
            ),
            (
                // A name with a space or a newline would add a rule of its own to the profile.
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["read", "write allow\nptrace"], "action": "SCMP_ACT_ERRNO"}
                ]}),
                "linux.seccomp.syscalls[0].names[1]: \"write allow\\nptrace\" is not a system call name",
            ),
        ] {
            let err = profile(&seccomp(json)).unwrap_err();
            assert!(err.to_string().starts_with(want), "{err}");
        }
    }
}
