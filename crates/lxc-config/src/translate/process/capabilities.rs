//! `process.capabilities`: the bounding set as `lxc.cap.keep`.

use std::collections::BTreeSet;

use oci_spec::runtime::{Capabilities, Process};
use proxcage_oci::oci_spec;

use super::user::{monitored_user, USER_SWITCH_CAPS};
use super::{unsupported, Builder};
use crate::error::TranslateError;

fn names(set: &Option<Capabilities>) -> BTreeSet<String> {
    set.iter()
        .flatten()
        .map(|c| c.to_string().to_ascii_lowercase())
        .collect()
}

/// `lxc.cap.keep` from the bounding set. LXC drops everything else from the bounding set
/// and execs the init; root then has exactly the bounding set as effective and permitted,
/// and any other user has none. Sets that ask for something else are refused.
pub(super) fn capabilities(b: &mut Builder<'_>, process: &Process) -> Result<(), TranslateError> {
    let Some(caps) = process.capabilities() else {
        // No capabilities section: runc leaves the capabilities as they are. LXC's default
        // keeps every capability too.
        return Ok(());
    };
    let bounding = names(caps.bounding());
    let root = process.user().uid() == 0;
    for (set, field) in [
        (caps.effective(), "effective"),
        (caps.permitted(), "permitted"),
        (caps.ambient(), "ambient"),
    ] {
        let got = names(set);
        let expressible = if root {
            set.is_none() || got == bounding || (field == "ambient" && got.is_subset(&bounding))
        } else if b.paths.monitored && field != "ambient" {
            // The init becomes the user itself, as runc does: a non-root process keeps no
            // effective or permitted capability across its exec (only ambient ones would),
            // so these sets change nothing, with runc as here.
            true
        } else {
            got.is_empty()
        };
        if !expressible {
            return Err(unsupported(
                format!("process.capabilities.{field}"),
                if root {
                    "LXC gives a root process every capability of the bounding set (lxc.cap.keep); a different set is not expressible".to_string()
                } else {
                    "LXC drops every capability of a non-root process and has no ambient capabilities".to_string()
                },
            ));
        }
    }
    if !names(caps.inheritable()).is_empty() {
        return Err(unsupported(
            "process.capabilities.inheritable",
            "LXC has no key for inheritable capabilities",
        ));
    }
    // A monitored init switches users itself: it keeps what that takes, and drops it from
    // its bounding set before the switch (see `monitored_user`).
    let mut bounding = bounding;
    if monitored_user(b.paths.monitored, process).is_some() {
        bounding.extend(USER_SWITCH_CAPS.iter().map(|(name, _)| name.to_string()));
    }
    let keep = if bounding.is_empty() {
        "none".to_string()
    } else {
        bounding.into_iter().collect::<Vec<_>>().join(" ")
    };
    b.push("process.capabilities.bounding", "lxc.cap.keep", keep)
}
