//! Pods: a running sandbox CT whose network keeper is gone (killed by hand, or by the
//! OOM killer) would let the pod's interfaces die with the CT instead of handing them
//! back, and the client's CNI DEL then could not remove its NAT rules; the repair leaves
//! a new keeper. A member whose pod is gone (its sandbox's record or CT) cannot run
//! again; the repair forgets it as a forced delete would.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proxcage_core::{ContainerId, Error, Finding, Result, Severity};
use proxcage_store::StateStore;

use super::{node_vmids, repair_if, RecordView};
use crate::backend::Pct;
use crate::parse::ListEntry;
use crate::sandbox;
use crate::vmid::Vmid;

/// One finding per running sandbox CT whose keeper is no longer alive.
pub(super) fn keepers_gone(
    pct: &Pct,
    store: &StateStore,
    records: &BTreeMap<ContainerId, RecordView>,
    on_node: &BTreeMap<Vmid, &ListEntry>,
) -> Vec<Finding> {
    records
        .iter()
        .filter_map(|(id, r)| {
            let (keeper, netns) = (r.keeper?, r.sandbox_netns.as_ref()?);
            let running = on_node.get(&r.vmid).is_some_and(|c| c.status == "running");
            if !running || !sandbox::wait_keeper(keeper, Duration::ZERO) {
                return None;
            }
            let vmid = r.vmid;
            let finding = Finding::new(
                "pod-network-keeper-gone",
                Severity::Warning,
                format!("container {id}"),
                format!("pct:{vmid}"),
                format!(
                    "the network keeper (pid {keeper}) of this pod sandbox is gone: when CT {vmid} stops, the interfaces it took from {} would die with it instead of going back, and the client's CNI DEL could not remove its NAT rules",
                    netns.display()
                ),
            );
            let (pct, store, id) = (pct.clone(), store.clone(), id.clone());
            Some(finding.with_repair(
                "start a new network keeper, which the container's monitor waits for as for the first",
                move || {
                    repair_if(&pct, &store, &id, |f| f.vmid == Some(vmid), |_lock| {
                        let keeper = pct.replace_keeper(&id)?;
                        Ok(format!("container {id}: new network keeper {keeper} for CT {vmid}"))
                    })
                },
            ))
        })
        .collect()
}

/// One finding per member whose pod is gone (`pod-member-orphaned`). A member left
/// `stopped` by its sandbox's delete is one until its client deletes it, as containerd
/// and podman do right after.
pub(super) fn members_orphaned(
    pct: &Pct,
    store: &StateStore,
    on_node: &BTreeMap<Vmid, &ListEntry>,
) -> Vec<Finding> {
    let on_node: BTreeSet<Vmid> = on_node.keys().copied().collect();
    pct.member_ids()
        .into_iter()
        .filter_map(|id| {
            let why = pct.pod_gone(&id, &on_node)?;
            let finding = Finding::new(
                "pod-member-orphaned",
                Severity::Warning,
                format!("container {id}"),
                pct.member_path(&id).display(),
                format!("a member of a pct pod whose pod is gone: {why}; it cannot run again, and what is left of it (its record, files, cgroups, a waiter) stays until it is deleted"),
            );
            let (pct, store) = (pct.clone(), store.clone());
            Some(finding.with_repair(
                "forget the member as a forced delete does: kill what is left of it (its processes, its waiter), remove its cgroups, files and records",
                move || forget_orphan(&pct, &store, &id),
            ))
        })
        .collect()
}

/// Under the member's lock, if its pod is still gone: a forced delete, and proxcage's
/// record with it.
fn forget_orphan(pct: &Pct, store: &StateStore, id: &ContainerId) -> Result<String> {
    let lock = store.lock_new(id)?;
    let Some(why) = pct.pod_gone(id, &node_vmids(pct)?) else {
        return Err(Error::Conflict {
            id: id.clone(),
            message: "it changed since the check (its pod, or the member, is there again or deleted); run health again".into(),
        });
    };
    super::cts::delete_forced(pct, id)?;
    if lock.record()?.is_some() {
        lock.remove()?;
    }
    Ok(format!("forgot container {id}: {why}"))
}
