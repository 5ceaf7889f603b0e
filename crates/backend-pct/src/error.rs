//! pct's failures, read from its exact messages (reference: pve-container 6.1), and said
//! again in words that tell the operator what happened and what to do.

use crate::vmid::Vmid;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PctError {
    #[error(
        "VMID {vmid} is already used by a QEMU VM on node '{node}': proxcage takes another VMID"
    )]
    VmidTakenByVm { vmid: String, node: String },

    #[error("VMID {vmid} is already used by CT {vmid} on node '{node}'")]
    VmidTakenByCt { vmid: String, node: String },

    #[error("CT {vmid} does not exist (pct: configuration file '{conf}' does not exist)")]
    NoSuchCt { vmid: String, conf: String },

    #[error("CT {vmid} is locked ({reason}): wait for the {reason} to finish, or run 'pct unlock {vmid}' if none is running")]
    Locked { vmid: String, reason: String },

    #[error("the config lock {lock} timed out: another pct command holds it; wait, or run 'pct unlock <vmid>' if none is running")]
    LockTimeout { lock: String },

    #[error("template {volume} not found: run 'proxcage template create <bundle>' or check the template storage")]
    TemplateNotFound { volume: String },

    #[error("storage '{storage}' does not exist: name a storage of /etc/pve/storage.cfg in [backends.pct]")]
    NoStorage { storage: String },

    #[error("storage '{storage}' does not support container directories: set [backends.pct] rootfs_storage to a storage with 'rootdir' content (local-lvm, local-zfs, ...)")]
    NoRootdir { storage: String },

    #[error("pct cannot parse the volume ID '{volume}'")]
    BadVolume { volume: String },

    #[error("CT {vmid} is already running")]
    AlreadyRunning { vmid: String },

    #[error("CT {vmid}: container not running")]
    NotRunning { vmid: String },

    #[error("CT {vmid} is running: stop it first")]
    Running { vmid: String },

    #[error(
        "CT {vmid} has protection mode enabled: 'pct set {vmid} --protection 0' allows its removal"
    )]
    Protected { vmid: String },

    #[error("pct refused the parameters: {details}")]
    Parameters { details: String },

    #[error("CT {vmid} did not start: {details}")]
    StartFailed { vmid: String, details: String },

    #[error("CT {vmid} did not stop in time")]
    StopTimeout { vmid: String },

    #[error(
        "pct could not detect the OS distribution of the template: create with --ostype unmanaged"
    )]
    NoDistro,

    /// A failure without a message of its own in the reference: pct's text, verbatim.
    #[error("{message}")]
    Other { message: String },
}

impl PctError {
    /// The class of the failure, for callers that match on runc's classes.
    pub fn kind(&self) -> proxcage_core::ErrorKind {
        use proxcage_core::ErrorKind;
        match self {
            PctError::NoSuchCt { .. } => ErrorKind::NotFound,
            PctError::NotRunning { .. } => ErrorKind::NotRunning,
            PctError::Parameters { .. } | PctError::BadVolume { .. } => ErrorKind::InvalidInput,
            _ => ErrorKind::Other,
        }
    }
}

/// Reads pct's (or pvesh's) stderr. Perl `die` messages end with " at <file> line N." in
/// some builds and usually with a newline; the last non-empty line is the error, earlier
/// lines are context (LXC's errors before `startup ... failed`, parameter details).
pub fn classify(stderr: &str, vmid: Option<Vmid>) -> PctError {
    let vmid = vmid.map(|v| v.to_string()).unwrap_or_else(|| "?".into());
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let text = lines.join("\n");
    let last = lines.last().copied().unwrap_or("");

    // A known message wins, also inside a parameter block (pct reports a storage without
    // rootdir content as `400 Parameter verification failed.` + `storage: storage ...`).
    for line in lines.iter().rev() {
        if let Some(e) = classify_line(line, &lines, &vmid) {
            return e;
        }
    }
    if let Some(i) = lines
        .iter()
        .position(|l| l.starts_with("400 Parameter verification failed"))
    {
        // The field lines, without the usage line pct prints after them.
        let details: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|l| !l.starts_with("pct ") && !l.starts_with("pvesh "))
            .copied()
            .collect();
        return PctError::Parameters {
            details: if details.is_empty() {
                lines[i].to_string()
            } else {
                details.join("; ")
            },
        };
    }
    if text.contains("400 not enough arguments") {
        return PctError::Parameters {
            details: "400 not enough arguments".into(),
        };
    }
    PctError::Other {
        message: if last.is_empty() {
            "pct printed no error message".into()
        } else {
            text
        },
    }
}

/// The text of `s` between `start` and the next `end`.
fn between(s: &str, start: &str, end: &str) -> Option<String> {
    let rest = &s[s.find(start)? + start.len()..];
    Some(rest[..rest.find(end)?].to_string())
}

fn classify_line(line: &str, all: &[&str], vmid: &str) -> Option<PctError> {
    taken(line)
        .or_else(|| config_and_storage(line, vmid))
        .or_else(|| ct_state(line, all, vmid))
}

/// A VMID that a CT or VM already has.
fn taken(line: &str) -> Option<PctError> {
    if let Some(rest) = line
        .strip_prefix("vmid: VM ")
        .and_then(|r| r.strip_suffix(" already exists"))
    {
        return Some(PctError::VmidTakenByVm {
            vmid: rest.to_string(),
            node: String::new(),
        });
    }
    for (prefix, is_vm) in [("CT ", false), ("VM ", true)] {
        if let (Some(vmid), Some(node)) = (
            line.strip_prefix(prefix).and_then(|r| r.split(' ').next()),
            between(line, " already exists on node '", "'"),
        ) {
            let vmid = vmid.to_string();
            return Some(if is_vm {
                PctError::VmidTakenByVm { vmid, node }
            } else {
                PctError::VmidTakenByCt { vmid, node }
            });
        }
    }
    None
}

/// The CT's config, its lock, templates and storages.
fn config_and_storage(line: &str, vmid: &str) -> Option<PctError> {
    if let Some(conf) = between(line, "Configuration file '", "' does not exist") {
        let vmid = conf
            .rsplit('/')
            .next()
            .unwrap_or("")
            .trim_end_matches(".conf")
            .to_string();
        return Some(PctError::NoSuchCt { vmid, conf });
    }
    if let Some(reason) = between(line, "CT is locked (", ")") {
        return Some(PctError::Locked {
            vmid: vmid.to_string(),
            reason,
        });
    }
    if let Some(lock) = between(line, "can't lock file '", "' - got timeout") {
        return Some(PctError::LockTimeout { lock });
    }
    if let Some(volume) = between(line, "can't find file '", "'") {
        return Some(PctError::TemplateNotFound { volume });
    }
    if let Some(storage) = between(
        line,
        "storage '",
        "' does not support container directories",
    ) {
        return Some(PctError::NoRootdir { storage });
    }
    if let Some(storage) = between(line, "storage '", "' does not exist") {
        return Some(PctError::NoStorage { storage });
    }
    if let Some(volume) = between(line, "unable to parse volume ID '", "'") {
        return Some(PctError::BadVolume { volume });
    }
    None
}

/// What the CT's state refused, and failed starts and stops.
fn ct_state(line: &str, all: &[&str], vmid: &str) -> Option<PctError> {
    if let Some(vmid) = line
        .strip_prefix("CT ")
        .and_then(|r| r.strip_suffix(" already running"))
    {
        return Some(PctError::AlreadyRunning { vmid: vmid.into() });
    }
    if let Some(vmid) = line
        .strip_prefix("CT ")
        .and_then(|r| r.strip_suffix(" not running"))
    {
        return Some(PctError::NotRunning { vmid: vmid.into() });
    }
    if let Some(vmid) = between(line, "container '", "' not running!") {
        return Some(PctError::NotRunning { vmid });
    }
    if let Some(vmid) = between(line, "unable to destroy CT ", " - container is running") {
        return Some(PctError::Running { vmid });
    }
    if let Some(vmid) = between(line, "can't remove CT ", " - protection mode enabled") {
        return Some(PctError::Protected { vmid });
    }
    if let Some(vmid) = between(line, "startup for container '", "' failed")
        .or_else(|| between(line, "unable to get PID for CT ", " (not running?)"))
    {
        let details: Vec<&str> = all.iter().copied().filter(|l| *l != line).collect();
        return Some(PctError::StartFailed {
            vmid,
            details: if details.is_empty() {
                line.to_string()
            } else {
                details.join("; ")
            },
        });
    }
    if line.contains("container did not stop") {
        return Some(PctError::StopTimeout {
            vmid: vmid.to_string(),
        });
    }
    if line.contains("unable to detect OS distribution") {
        return Some(PctError::NoDistro);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> PctError {
        classify(s, Some(Vmid::new(105).unwrap()))
    }

    #[test]
    fn every_message_of_the_reference_is_recognised() {
        assert_eq!(
            c("CT 100 already exists on node 'pve'\n"),
            PctError::VmidTakenByCt {
                vmid: "100".into(),
                node: "pve".into()
            }
        );
        assert_eq!(
            c("VM 105 already exists on node 'pve'\n"),
            PctError::VmidTakenByVm {
                vmid: "105".into(),
                node: "pve".into()
            }
        );
        assert!(c("VM 105 already exists on node 'pve'")
            .to_string()
            .contains("VMID 105 is already used by a QEMU VM"));
        assert_eq!(
            c("vmid: VM 105 already exists\n"),
            PctError::VmidTakenByVm {
                vmid: "105".into(),
                node: String::new()
            }
        );
        assert_eq!(
            c("Configuration file 'nodes/pve/lxc/100.conf' does not exist\n"),
            PctError::NoSuchCt {
                vmid: "100".into(),
                conf: "nodes/pve/lxc/100.conf".into()
            }
        );
        let locked = c("CT is locked (backup)\n");
        assert_eq!(locked.to_string(), "CT 105 is locked (backup): wait for the backup to finish, or run 'pct unlock 105' if none is running");
        assert!(matches!(
            c("can't lock file '/run/lock/lxc/pve-config-100.lock' - got timeout\n"),
            PctError::LockTimeout { .. }
        ));
        let t = c("unable to create CT 100 - can't find file 'local:vztmpl/x.tar.zst'\n");
        assert_eq!(
            t,
            PctError::TemplateNotFound {
                volume: "local:vztmpl/x.tar.zst".into()
            }
        );
        assert!(t
            .to_string()
            .starts_with("template local:vztmpl/x.tar.zst not found: run 'proxcage template"));
        assert_eq!(
            c("storage 'x' does not exist\n"),
            PctError::NoStorage {
                storage: "x".into()
            }
        );
        assert_eq!(
            c("unable to parse volume ID 'a b'\n"),
            PctError::BadVolume {
                volume: "a b".into()
            }
        );
        assert_eq!(
            c("CT 100 already running\n"),
            PctError::AlreadyRunning { vmid: "100".into() }
        );
        assert_eq!(
            c("CT 100 not running\n"),
            PctError::NotRunning { vmid: "100".into() }
        );
        assert_eq!(
            c("container '100' not running!\n"),
            PctError::NotRunning { vmid: "100".into() }
        );
        assert!(c("CT 100 not running")
            .to_string()
            .contains("container not running"));
        assert_eq!(
            c("unable to destroy CT 100 - container is running\n"),
            PctError::Running { vmid: "100".into() }
        );
        assert_eq!(
            c("can't remove CT 100 - protection mode enabled\n"),
            PctError::Protected { vmid: "100".into() }
        );
        assert_eq!(
            c("400 Parameter verification failed.\nvmid: value must have a minimum value of 100\n"),
            PctError::Parameters { details: "vmid: value must have a minimum value of 100".into() }
        );
        assert!(matches!(
            c("400 not enough arguments\npct destroy <vmid> [OPTIONS]\n"),
            PctError::Parameters { .. }
        ));
        assert_eq!(c("unable to detect OS distribution\n"), PctError::NoDistro);
        assert_eq!(
            c("400 Parameter verification failed.\nstorage: storage 'local' does not support container directories\npct create <vmid> <ostemplate> [OPTIONS]\n"),
            PctError::NoRootdir { storage: "local".into() }
        );
        assert_eq!(
            c("400 Parameter verification failed.\nmemory: value must have a minimum value of 16\npct create <vmid> <ostemplate> [OPTIONS]\n"),
            PctError::Parameters { details: "memory: value must have a minimum value of 16".into() }
        );
        assert_eq!(
            c("storage 'local' does not support container directories\n"),
            PctError::NoRootdir {
                storage: "local".into()
            }
        );
        assert!(matches!(
            c("lxc-start: 100: failed to exec\nstartup for container '100' failed\n"),
            PctError::StartFailed { ref vmid, ref details } if vmid == "100" && details.contains("failed to exec")
        ));
        assert!(matches!(
            c("unable to get PID for CT 100 (not running?)\n"),
            PctError::StartFailed { .. }
        ));
        assert!(matches!(
            c("container did not stop\n"),
            PctError::StopTimeout { .. }
        ));
        assert_eq!(
            c("something new\n"),
            PctError::Other {
                message: "something new".into()
            }
        );
    }
}
