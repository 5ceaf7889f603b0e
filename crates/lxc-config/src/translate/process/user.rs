//! `process.user`: LXC's `lxc.init.uid`/`gid`/`groups`, or the user a monitored init
//! switches to itself.

use std::collections::BTreeSet;

use oci_spec::runtime::Process;
use proxcage_oci::oci_spec;

use super::Builder;
use crate::error::TranslateError;

/// What a user switch takes: CAP_SETGID (6), CAP_SETUID (7) and, to drop them from the
/// bounding set afterwards, CAP_SETPCAP (8), last.
pub(super) const USER_SWITCH_CAPS: [(&str, u32); 3] =
    [("setgid", 6), ("setuid", 7), ("setpcap", 8)];

/// Without a monitor, LXC switches to the user before it execs the init.
pub(super) fn lxc_keys(b: &mut Builder<'_>, process: &Process) -> Result<(), TranslateError> {
    if b.paths.monitored {
        return Ok(());
    }
    let user = process.user();
    b.push("process.user.uid", "lxc.init.uid", user.uid().to_string())?;
    b.push("process.user.gid", "lxc.init.gid", user.gid().to_string())?;
    if let Some(groups) = user.additional_gids().as_ref().filter(|g| !g.is_empty()) {
        let list: Vec<_> = groups.iter().map(u32::to_string).collect();
        b.push(
            "process.user.additionalGids",
            "lxc.init.groups",
            list.join(","),
        )?;
    }
    Ok(())
}

/// The user a monitored init becomes: none for root with no additional groups (it stays
/// root); otherwise the ids, and the user-switch capabilities the spec's bounding set
/// lacks, which the init drops before it switches.
pub(super) fn monitored_user(monitored: bool, process: &Process) -> Option<crate::process::User> {
    let user = process.user();
    let groups = user.additional_gids().clone().unwrap_or_default();
    if !monitored || (user.uid() == 0 && user.gid() == 0 && groups.is_empty()) {
        return None;
    }
    let bounding: BTreeSet<String> = process
        .capabilities()
        .as_ref()
        .and_then(|c| c.bounding().clone())
        .iter()
        .flatten()
        .map(|c| c.to_string().to_ascii_lowercase())
        .collect();
    let unrestricted = process
        .capabilities()
        .as_ref()
        .is_none_or(|c| c.bounding().is_none());
    let drop_bounding = USER_SWITCH_CAPS
        .iter()
        .filter(|(name, _)| !unrestricted && !bounding.contains(*name))
        .map(|(_, number)| *number)
        .collect();
    Some(crate::process::User {
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: groups,
        drop_bounding,
    })
}
