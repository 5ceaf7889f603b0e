//! Pod sandboxes: a running sandbox CT whose network keeper is gone (killed by hand, or
//! by the OOM killer) would let the pod's interfaces die with the CT instead of handing
//! them back, and the client's CNI DEL then could not remove its NAT rules. The repair
//! leaves a new keeper.

use std::collections::BTreeMap;
use std::time::Duration;

use proxcage_core::{ContainerId, Finding, Severity};
use proxcage_store::StateStore;

use super::{repair_if, RecordView};
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
