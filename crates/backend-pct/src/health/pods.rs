//! Pod sandboxes: a running sandbox CT whose network keeper is gone (killed by hand, or
//! by the OOM killer) will let the pod's interfaces die with the CT instead of handing
//! them back, and the client's CNI DEL then cannot remove its NAT rules.

use std::collections::BTreeMap;
use std::time::Duration;

use proxcage_core::{ContainerId, Finding, Severity};

use super::RecordView;
use crate::parse::ListEntry;
use crate::sandbox;
use crate::vmid::Vmid;

/// One finding per running sandbox CT whose keeper is no longer alive. Not repaired: a
/// new keeper could not make the monitor wait for it; the operator is told what is left
/// to clean once the pod is removed.
pub(super) fn keepers_gone(
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
            Some(Finding::new(
                "pod-network-keeper-gone",
                Severity::Warning,
                format!("container {id}"),
                format!("pct:{}", r.vmid),
                format!(
                    "the network keeper (pid {keeper}) of this pod sandbox is gone: when CT {} stops, the interfaces it took from {} die with it instead of going back, and the client's CNI DEL cannot remove its NAT rules; remove the pod through its client, then the iptables rules that name the pod's IP",
                    r.vmid,
                    netns.display()
                ),
            ))
        })
        .collect()
}
