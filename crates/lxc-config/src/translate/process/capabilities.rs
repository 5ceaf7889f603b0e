//! `process.capabilities`: the bounding set as `lxc.cap.keep`, and the inheritable and
//! ambient sets as proxcage-init applies them before the exec, as runc does.
//!
//! LXC drops everything but the keep list from the bounding set and execs the init as
//! root. A root process then gets the bounding set (with the inheritable set) as its
//! effective and permitted sets at its exec, whatever they were before; a process that
//! switched to another user keeps only its ambient capabilities. So besides the bounding
//! set, what reaches the process is the inheritable and the ambient set, and those take
//! the init: it sets them after the user switch (keeping its permitted set across it) and
//! before the exec. Without the init, or when LXC switches the user before the init runs,
//! they are refused.

use std::collections::BTreeSet;

use oci_spec::runtime::{Capabilities, Capability, Process};
use proxcage_oci::oci_spec;

use super::user::{monitored_user, USER_SWITCH_CAPS};
use super::{unsupported, Builder};
use crate::error::TranslateError;
use crate::process::CapabilitySets;

/// The capability's number in the kernel (`linux/capability.h`).
fn number(cap: Capability) -> u32 {
    use Capability::*;
    match cap {
        Chown => 0,
        DacOverride => 1,
        DacReadSearch => 2,
        Fowner => 3,
        Fsetid => 4,
        Kill => 5,
        Setgid => 6,
        Setuid => 7,
        Setpcap => 8,
        LinuxImmutable => 9,
        NetBindService => 10,
        NetBroadcast => 11,
        NetAdmin => 12,
        NetRaw => 13,
        IpcLock => 14,
        IpcOwner => 15,
        SysModule => 16,
        SysRawio => 17,
        SysChroot => 18,
        SysPtrace => 19,
        SysPacct => 20,
        SysAdmin => 21,
        SysBoot => 22,
        SysNice => 23,
        SysResource => 24,
        SysTime => 25,
        SysTtyConfig => 26,
        Mknod => 27,
        Lease => 28,
        AuditWrite => 29,
        AuditControl => 30,
        Setfcap => 31,
        MacOverride => 32,
        MacAdmin => 33,
        Syslog => 34,
        WakeAlarm => 35,
        BlockSuspend => 36,
        AuditRead => 37,
        Perfmon => 38,
        Bpf => 39,
        CheckpointRestore => 40,
    }
}

/// A set as a mask (bit n is capability n); an absent set is empty.
fn mask(set: &Option<Capabilities>) -> u64 {
    set.iter().flatten().fold(0, |m, c| m | 1 << number(*c))
}

/// A set's names as LXC writes them (`net_raw`), sorted.
fn names(set: &Option<Capabilities>) -> BTreeSet<String> {
    set.iter()
        .flatten()
        .map(|c| c.to_string().to_ascii_lowercase())
        .collect()
}

/// The names of a mask's capabilities in the spec's spelling, for messages.
fn spelled(mask: u64, set: &Option<Capabilities>) -> String {
    let mut out: Vec<String> = set
        .iter()
        .flatten()
        .filter(|c| mask & 1 << number(**c) != 0)
        .map(|c| format!("CAP_{c}"))
        .collect();
    out.sort();
    out.join(", ")
}

/// `lxc.cap.keep` from the bounding set, once the effective and permitted sets are
/// known to be what the process gets.
pub(super) fn keep(b: &mut Builder<'_>, process: &Process) -> Result<(), TranslateError> {
    let Some(caps) = process.capabilities() else {
        // No capabilities section: runc leaves the capabilities as they are. LXC's default
        // keeps every capability too.
        return Ok(());
    };
    check_effective_and_permitted(b, process, caps)?;
    // A monitored init switches users itself: it keeps what that takes, and drops it from
    // its bounding set before the switch (see `monitored_user`).
    let mut keep = names(caps.bounding());
    if monitored_user(b.paths.monitored, process).is_some() {
        keep.extend(USER_SWITCH_CAPS.iter().map(|(name, _)| name.to_string()));
    }
    let keep = if keep.is_empty() {
        "none".to_string()
    } else {
        keep.into_iter().collect::<Vec<_>>().join(" ")
    };
    // LXC refuses a keep list next to a drop list, and Proxmox includes LXC's
    // common.conf, which has one: clear it first, whatever came before.
    b.push("process.capabilities.bounding", "lxc.cap.drop", "")?;
    b.push("process.capabilities.bounding", "lxc.cap.keep", keep)
}

/// What the effective and permitted sets can ask for: a root process gets the bounding
/// set at its exec; a process that switches users itself (the monitored init) gets only
/// its ambient capabilities, whatever these say, with runc as here; one LXC switches has
/// none.
fn check_effective_and_permitted(
    b: &Builder<'_>,
    process: &Process,
    caps: &oci_spec::runtime::LinuxCapabilities,
) -> Result<(), TranslateError> {
    let bounding = mask(caps.bounding());
    let root = process.user().uid() == 0;
    for (set, field) in [
        (caps.effective(), "effective"),
        (caps.permitted(), "permitted"),
    ] {
        let expressible = if root {
            set.is_none() || mask(set) == bounding
        } else {
            b.paths.monitored || mask(set) == 0
        };
        if !expressible {
            return Err(unsupported(
                format!("process.capabilities.{field}"),
                if root {
                    "a root process gets every capability of the bounding set at its exec (lxc.cap.keep); a different set is not expressible"
                } else {
                    "LXC drops every capability of a non-root process it switches to; a monitored proxcage-init switches users itself"
                },
            ));
        }
    }
    Ok(())
}

/// The sets the init applies, when the spec asks for inheritable capabilities or ambient
/// ones it can raise; refused where the kernel would refuse them, or where no init can
/// apply them.
pub(super) fn init_sets(
    b: &Builder<'_>,
    process: &Process,
) -> Result<Option<CapabilitySets>, TranslateError> {
    let Some(caps) = process.capabilities() else {
        return Ok(None);
    };
    let bounding = mask(caps.bounding());
    let inheritable = mask(caps.inheritable());
    if inheritable & !bounding != 0 {
        return Err(unsupported(
            "process.capabilities.inheritable",
            format!(
                "{} not in the bounding set; the kernel adds no inheritable capability from outside it",
                spelled(inheritable & !bounding, caps.inheritable())
            ),
        ));
    }
    // An absent permitted or effective set leaves the init's: the bounding set.
    let permitted = match caps.permitted() {
        Some(_) => mask(caps.permitted()) & bounding,
        None => bounding,
    };
    // The kernel raises an ambient capability only if it is permitted and inheritable;
    // runc skips the others (its own default spec asks for ambient capabilities without
    // inheritable ones), and so does this.
    let ambient = mask(caps.ambient()) & permitted & inheritable;
    if inheritable | ambient == 0 {
        return Ok(None);
    }
    if !b.paths.init || (process.user().uid() != 0 && !b.paths.monitored) {
        let field = if inheritable != 0 {
            "inheritable"
        } else {
            "ambient"
        };
        return Err(unsupported(
            format!("process.capabilities.{field}"),
            "only proxcage-init sets inheritable and ambient capabilities, and only while it runs as root: LXC has no key for them and drops every capability of a user it switches to",
        ));
    }
    let effective = match caps.effective() {
        Some(_) => mask(caps.effective()) & permitted,
        None => permitted,
    };
    Ok(Some(CapabilitySets {
        effective,
        permitted,
        inheritable,
        ambient,
    }))
}
