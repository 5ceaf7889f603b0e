//! CTs no record names (`ct-unrecorded`, `ct-half-created`), CTs gone from under a
//! record (`ct-gone`), and the cleanup after an interrupted create.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use proxcage_core::{
    ContainerId, DeleteRequest, Error, ErrorKind, Finding, Result, Runtime, Severity,
};
use proxcage_store::{health, Phase, Record, StateStore};

use super::{confirmed, remove_missing_ok, repair_if, Fresh, RecordView};
use crate::backend::Pct;
use crate::error::PctError;
use crate::identity;
use crate::parse::ListEntry;
use crate::vmid::Vmid;

/// What the CT's config says of a CT that no record names.
pub(super) struct Unrecorded {
    pub(super) entry: ListEntry,
    pub(super) tagged: bool,
    /// The container id in a `proxcage container <id>` description.
    pub(super) owner: Option<ContainerId>,
    /// Made by another proxcage root (its description names another root's token).
    pub(super) foreign: bool,
}

/// The CTs of `cts` that no backend record names, with their tags and descriptions.
pub(super) fn unrecorded(
    pct: &Pct,
    cts: &[ListEntry],
    records: &BTreeMap<ContainerId, RecordView>,
) -> Result<Vec<Unrecorded>> {
    let recorded: BTreeSet<Vmid> = records.values().map(|r| r.vmid).collect();
    let mut out = Vec::new();
    for entry in cts.iter().filter(|c| !recorded.contains(&c.vmid)) {
        out.extend(inspect(pct, entry.clone())?);
    }
    Ok(out)
}

/// What the CT says of who made it. `None` when the CT is gone by now (destroyed since
/// `pct list`).
fn inspect(pct: &Pct, entry: ListEntry) -> Result<Option<Unrecorded>> {
    let Some(seen) = identity::read(pct.tools(), pct.pve_dir(), entry.vmid)? else {
        return Ok(None);
    };
    let token = identity::read_token(pct.root())?;
    let foreign = seen.root.is_some() && seen.root != token;
    Ok(Some(Unrecorded {
        entry,
        tagged: seen.tagged,
        owner: seen.owner,
        foreign,
    }))
}

/// A `pct create` whose proxcage was killed runs on and tags its CT only at its end:
/// until it finished, the CT an interrupted create made cannot be told. The VMIDs of
/// such creates still running.
pub(super) fn creating_now(pct: &Pct, unrecorded: &[Unrecorded]) -> Vec<String> {
    unrecorded
        .iter()
        .filter(|u| !u.tagged && u.entry.lock == "create" && pct_config_locked(pct, u.entry.vmid))
        .map(|u| u.entry.vmid.to_string())
        .collect()
}

/// Findings about CTs no record names. Those tagged with an owner's id come back apart,
/// with the owner and VMID, to be confirmed under the owner's lock; those whose owner's
/// create was interrupted are the interrupted create's.
pub(super) fn unrecorded_findings(
    pct: &Pct,
    store: &StateStore,
    unrecorded: &[Unrecorded],
    interrupted: &BTreeSet<ContainerId>,
) -> (Vec<Finding>, Vec<(ContainerId, Vmid, Finding)>) {
    let (mut findings, mut owned) = (Vec::new(), Vec::new());
    for u in unrecorded {
        let vmid = u.entry.vmid;
        if u.foreign {
            // Another root's: that root's health judges it.
            continue;
        }
        if u.tagged {
            if u.owner.as_ref().is_some_and(|id| interrupted.contains(id)) {
                continue;
            }
            let whose = match &u.owner {
                Some(id) => format!("container {id}"),
                None => "a container".to_string(),
            };
            let finding = Finding::new(
                "ct-unrecorded",
                Severity::Warning,
                format!("CT {vmid}"),
                format!("pct:{vmid}"),
                format!("tagged proxcage as {whose}, but no container of this root ({}) records it: another proxcage root on this node may own it; if none does, 'pct destroy {vmid} --force 1 --purge 1' removes it", store.root().display()),
            );
            match &u.owner {
                Some(owner) => owned.push((owner.clone(), vmid, finding)),
                None => findings.push(finding),
            }
        } else if let Some(finding) = super::stale::destroyed_unrecorded(&u.entry) {
            findings.push(finding);
        } else if u.entry.lock == "create" && !pct_config_locked(pct, vmid) {
            findings.push(Finding::new(
                "ct-half-created",
                Severity::Warning,
                format!("CT {vmid}"),
                format!("pct:{vmid}"),
                format!("CT {vmid} is locked (create) and no pct create runs for it: a create died midway. proxcage cannot tell who made it; if no one needs it, 'pct unlock {vmid}' then 'pct destroy {vmid} --purge 1'"),
            ));
        }
    }
    (findings, owned)
}

/// Backend records whose CT is no longer on the node (`ct-gone`): with proxcage's record
/// (destroyed by hand, or migrated) or without it (only the backend's record is left).
pub(super) fn gone(
    pct: &Pct,
    store: &StateStore,
    records: &BTreeMap<ContainerId, RecordView>,
    on_node: &BTreeMap<Vmid, &ListEntry>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (id, view) in records
        .iter()
        .filter(|(_, v)| !on_node.contains_key(&v.vmid))
    {
        let vmid = view.vmid;
        let core = match store.read(id) {
            Ok(Some(record)) if record.phase() == Phase::Created => Some(record),
            // A create in progress, or one interrupted: not this check's.
            Ok(Some(_)) | Err(_) => continue,
            Ok(None) if health::known(store, id) => continue,
            Ok(None) => None,
        };
        let holds = {
            let core = core.clone();
            move |f: &Fresh| f.core == core && f.vmid == Some(vmid) && f.ct_on_node() == Some(false)
        };
        if !confirmed(pct, store, id, &holds) {
            continue;
        }
        let message = match core {
            Some(_) => format!(
                "its CT {vmid} no longer exists on this node (destroyed by hand, or migrated)"
            ),
            None => format!("neither proxcage's record nor CT {vmid} exists any more; only the pct backend's record is left"),
        };
        let (pct, store, id) = (pct.clone(), store.clone(), id.clone());
        findings.push(
            Finding::new("ct-gone", Severity::Error, format!("container {id}"), format!("pct:{vmid}"), message)
                .with_repair(
                    "forget the container: its record, its files, and its template if no other container uses it",
                    move || {
                        repair_if(&pct, &store, &id, holds, |lock| {
                            delete_forced(&pct, &id)?;
                            if core.is_some() {
                                lock.remove()?;
                            }
                            Ok(format!("forgot container {id}, whose CT {vmid} was gone"))
                        })
                    },
                ),
        );
    }
    findings
}

/// Whether a pct command holds the CT's config lock right now.
fn pct_config_locked(pct: &Pct, vmid: Vmid) -> bool {
    let path = pct.lock_dir().join(format!("pve-config-{vmid}.lock"));
    let Ok(file) = fs::File::open(&path) else {
        return false;
    };
    matches!(
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock),
        Err((_, nix::errno::Errno::EWOULDBLOCK))
    )
}

pub(super) fn delete_forced(pct: &Pct, id: &ContainerId) -> Result<()> {
    match pct.delete(DeleteRequest { id, force: true }) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Cleans up after an interrupted create of `record`: the CT it made (recorded by the
/// backend, or tagged proxcage with this id in its description and recorded nowhere), the
/// container's files. Templates are left to the unreferenced-template check.
pub(crate) fn recover(pct: &Pct, record: &Record) -> Result<()> {
    let id = record.id();
    if pct.root().join(format!("{id}.json")).exists() || pct.is_member(id) {
        return delete_forced(pct, id);
    }
    if let Some(files) = pct.own_files_dir(id) {
        crate::member::forget_interrupted(&files, id.as_str());
    }
    let (records, _) = super::backend_records(pct.root());
    let tools = pct.tools();
    let cts = tools.list().map_err(Error::from)?;
    for u in unrecorded(pct, &cts, &records)? {
        if !(u.tagged && !u.foreign && u.owner.as_ref() == Some(id)) {
            continue;
        }
        let vmid = u.entry.vmid;
        tracing::warn!("container {id}: destroying CT {vmid}, made by a create that died");
        if u.entry.status == "running" {
            match tools.stop(vmid) {
                Ok(()) => {}
                Err(e) if matches!(e.pct(), Some(PctError::NotRunning { .. })) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match tools.destroy(vmid) {
            Ok(()) => {}
            Err(e) if matches!(e.pct(), Some(PctError::NoSuchCt { .. })) => {}
            Err(e) => return Err(e.into()),
        }
    }
    match pct.own_files_dir(id) {
        Some(files) => remove_missing_ok(&files),
        None => Ok(()),
    }
}
