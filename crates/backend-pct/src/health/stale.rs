//! Records that no longer name their container's CT: marked `destroying` by a delete that
//! stopped (`delete-interrupted`), naming a CT pct left half-destroyed
//! (`ct-destroy-interrupted`), or naming a VMID that holds another CT by now
//! (`record-stale`, which says when two records name one VMID). Each repair is a
//! delete of the container, which destroys only a CT it proves is the container's
//! (see `identity`) and forgets the record.

use std::collections::BTreeMap;

use proxcage_core::{ContainerId, Finding, Severity};
use proxcage_store::StateStore;

use super::{cts::delete_forced, repair_if, RecordView};
use crate::backend::Pct;
use crate::identity::{self, Proof};
use crate::parse::ListEntry;
use crate::vmid::Vmid;

/// What the VMID of `view` holds for container `id`; `None` when that cannot be read now
/// (the next check sees it again).
pub(super) fn proof(pct: &Pct, id: &ContainerId, view: &RecordView) -> Option<Proof> {
    let seen = identity::read(pct.tools(), pct.pve_dir(), view.vmid).ok()?;
    let token = identity::read_token(pct.root()).ok()?;
    Some(identity::judge(seen.as_ref(), id, token.as_deref()))
}

/// Findings about records whose CT is on the node but may not be theirs.
pub(super) fn findings(
    pct: &Pct,
    store: &StateStore,
    records: &BTreeMap<ContainerId, RecordView>,
    on_node: &BTreeMap<Vmid, &ListEntry>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (id, view) in records
        .iter()
        .filter(|(_, v)| on_node.contains_key(&v.vmid))
    {
        let vmid = view.vmid;
        let (kind, message) = match proof(pct, id, view) {
            Some(Proof::Ours) if !view.destroying => continue,
            None | Some(Proof::Gone) => continue,
            Some(Proof::Ours) => ("delete-interrupted", format!("a delete stopped after it began destroying its CT {vmid}, which is still there")),
            Some(Proof::Destroyed) => ("ct-destroy-interrupted", format!("pct destroy of its CT {vmid} stopped half-way (lock: destroyed): its volumes are freed")),
            Some(Proof::Other(what)) => ("record-stale", format!("its record names VMID {vmid}, which now holds {what}{}; proxcage never touches that CT through this record", shared(records, id, vmid))),
        };
        let (pct, store, id) = (pct.clone(), store.clone(), id.clone());
        let holds = move |f: &super::Fresh| f.vmid == Some(vmid);
        findings.push(
            Finding::new(kind, Severity::Error, format!("container {id}"), format!("pct:{vmid}"), message)
                .with_repair(
                    "finish the delete: destroy the CT only if it is proven the container's, forget the record",
                    move || {
                        repair_if(&pct, &store, &id, holds, |lock| {
                            delete_forced(&pct, &id)?;
                            if lock.record()?.is_some() {
                                lock.remove()?;
                            }
                            Ok(format!("forgot container {id}; CT {vmid} was destroyed only if it was the container's"))
                        })
                    },
                ),
        );
    }
    findings
}

/// The other records of this root that name `vmid`, in words (empty when none does).
fn shared(records: &BTreeMap<ContainerId, RecordView>, id: &ContainerId, vmid: Vmid) -> String {
    let others: Vec<String> = records
        .iter()
        .filter(|(other, v)| *other != id && v.vmid == vmid)
        .map(|(other, _)| other.to_string())
        .collect();
    if others.is_empty() {
        String::new()
    } else {
        format!(" (named by the record of {} as well)", others.join(", "))
    }
}

/// A CT pct left half-destroyed that no record names: whose it was cannot be told (its
/// config holds nothing else), so it is reported.
pub(super) fn destroyed_unrecorded(entry: &ListEntry) -> Option<Finding> {
    let vmid = entry.vmid;
    (entry.lock == "destroyed").then(|| {
        Finding::new(
            "ct-destroy-interrupted",
            Severity::Warning,
            format!("CT {vmid}"),
            format!("pct:{vmid}"),
            format!("pct destroy of CT {vmid} stopped half-way (lock: destroyed) and no container of this root names it; its VMID cannot be reused until 'pct unlock {vmid}' and 'pct destroy {vmid} --purge 1' finish it"),
        )
    })
}
