//! `proxcage health` for the pct backend: the tools and storage on the host, what the
//! backend holds (its records of CTs, for [`proxcage_store::health::reconcile`]), and
//! what only it can find: CTs no record names, CTs gone from under a record, monitors and
//! templates left over.
//!
//! Ownership: a CT is proxcage's when a record of this root names its VMID, or when it is
//! tagged `proxcage`, its description names a container id, and this root holds the
//! record of an interrupted create of that id (the crash between `pct create` and the
//! backend's record). Only such CTs are ever destroyed; any other CT tagged `proxcage` is
//! reported and left alone, since another proxcage root on the node may own it.

mod cts;
mod host;
mod leftovers;
mod locks;
mod pods;
mod stale;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use proxcage_core::{ContainerId, Error, Finding, Result};
use proxcage_store::health::{interrupted_create_confirmed, records_of, temp_file_finding};
use proxcage_store::{ContainerLock, Held, Leftovers, Phase, Record, StateStore};
use serde::Deserialize;

use crate::backend::Pct;
use crate::parse::ListEntry;
use crate::vmid::Vmid;
use crate::NAME;

pub(crate) use cts::recover;

/// The fields of the backend's per-container record the checks need.
#[derive(Debug, Deserialize)]
struct RecordView {
    vmid: Vmid,
    template: String,
    bundle: PathBuf,
    created: String,
    #[serde(default)]
    monitor: Option<i32>,
    #[serde(default)]
    keeper: Option<i32>,
    #[serde(default)]
    sandbox_netns: Option<PathBuf>,
    #[serde(default)]
    destroying: bool,
    #[serde(default)]
    files_dir: Option<PathBuf>,
}

/// The backend's records under its root, and the ones that do not parse.
fn backend_records(root: &Path) -> (BTreeMap<ContainerId, RecordView>, Vec<(PathBuf, String)>) {
    let mut good = BTreeMap::new();
    let mut bad = Vec::new();
    let Ok(entries) = fs::read_dir(root) else {
        return (good, bad);
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name
            .strip_suffix(".json")
            .and_then(|n| ContainerId::new(n).ok())
        else {
            continue;
        };
        match read_view(&entry.path()) {
            Ok(view) => {
                good.insert(id, view);
            }
            Err(e) => bad.push((entry.path(), e)),
        }
    }
    (good, bad)
}

fn read_view(path: &Path) -> std::result::Result<RecordView, String> {
    fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<RecordView>(&b).map_err(|e| e.to_string()))
}

/// What is true of one container right now, read again under its lock: see [`recheck`].
#[derive(Debug)]
struct Fresh {
    /// proxcage's record.
    core: Option<Record>,
    /// The VMID in the pct backend's record.
    vmid: Option<Vmid>,
    /// The CTs on the node (`pct list` again).
    on_node: BTreeSet<Vmid>,
}

impl Fresh {
    /// Whether the CT the backend's record names is on the node; `None` without a record.
    fn ct_on_node(&self) -> Option<bool> {
        self.vmid.map(|vmid| self.on_node.contains(&vmid))
    }
}

/// The check reads `pct list`, the backend's records and proxcage's at different moments
/// and without the containers' locks: a create or delete of `id` in between makes a
/// container look gone or unrecorded (and a repair acting on that would undo a create
/// that just finished). Under the container's lock (taken as a create takes it: a
/// directory made just for it goes with the lock), the facts are read again; findings
/// about one container are reported, and repaired, only if they still hold.
fn recheck(pct: &Pct, store: &StateStore, id: &ContainerId) -> Result<(ContainerLock, Fresh)> {
    let lock = store.lock_new(id)?;
    let core = lock.record()?;
    let vmid = read_view(&pct.root().join(format!("{id}.json")))
        .ok()
        .map(|view| view.vmid);
    let on_node = node_vmids(pct)?;
    Ok((
        lock,
        Fresh {
            core,
            vmid,
            on_node,
        },
    ))
}

/// Whether a create of `id` runs now: it holds the container's lock until its record says
/// `created`, and makes its CT and monitor before the backend's record.
fn creating_now(store: &StateStore, id: &ContainerId) -> bool {
    matches!(
        store.read(id),
        Ok(Some(r)) if r.phase() == Phase::Creating && !proxcage_store::health::create_interrupted(&r)
    )
}

fn node_vmids(pct: &Pct) -> Result<BTreeSet<Vmid>> {
    Ok(pct
        .tools()
        .list()
        .map_err(Error::from)?
        .iter()
        .map(|entry| entry.vmid)
        .collect())
}

/// Whether `holds` is still true of container `id` under its lock ([`recheck`]); a
/// recheck that fails counts as not confirmed (the next check sees it again).
fn confirmed(
    pct: &Pct,
    store: &StateStore,
    id: &ContainerId,
    holds: impl Fn(&Fresh) -> bool,
) -> bool {
    recheck(pct, store, id).is_ok_and(|(_lock, fresh)| holds(&fresh))
}

/// The repair of a finding about container `id`: under its lock, only if `holds` is
/// still true, `act` (given the lock, to remove the record through it).
fn repair_if(
    pct: &Pct,
    store: &StateStore,
    id: &ContainerId,
    holds: impl Fn(&Fresh) -> bool,
    act: impl FnOnce(ContainerLock) -> Result<String>,
) -> Result<String> {
    let (lock, fresh) = recheck(pct, store, id)?;
    if !holds(&fresh) {
        return Err(Error::Conflict {
            id: id.clone(),
            message: "it changed since the check (a command worked on it); run health again".into(),
        });
    }
    act(lock)
}

/// The pct backend's own findings; see the module documentation.
pub(crate) fn check(pct: &Pct, store: &StateStore) -> Result<Vec<Finding>> {
    let mut findings = host::checks(pct);
    // pct list failing means nothing below can be checked.
    let cts = pct.tools().list().map_err(Error::from)?;
    findings.extend(host::vmid_range_full(pct, &cts));

    // Creates run while the check reads: what a create in progress has made but not
    // recorded yet (its CT, its monitor) is left for the next check, and templates are
    // judged by their references (see `crate::templates`).
    let root = pct.root().to_path_buf();
    let (records, corrupt) = backend_records(&root);
    let any_corrupt = !corrupt.is_empty();
    // Their CTs are the repair's (backend-record-corrupt), not unrecorded ones.
    let unreadable: BTreeSet<String> = corrupt
        .iter()
        .filter_map(|(path, _)| Some(path.file_stem()?.to_string_lossy().into_owned()))
        .collect();
    findings.extend(leftovers::corrupt_records(pct, store, corrupt));
    for tmp in leftovers::temp_files(&root) {
        findings.push(temp_file_finding(tmp, format!("backend {NAME}")));
    }
    for tmp in leftovers::abandoned_packs(pct) {
        let name = tmp
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        findings.push(temp_file_finding(tmp, format!("template pack {name}")));
    }
    let unrecorded = cts::unrecorded(pct, &cts, &records)?;
    let interrupted: BTreeSet<ContainerId> = records_of(store, NAME)?
        .iter()
        .filter(|r| interrupted_create_confirmed(store, r))
        .map(|r| r.id().clone())
        .collect();
    let on_node: BTreeMap<Vmid, &ListEntry> = cts.iter().map(|c| (c.vmid, c)).collect();
    let (found, owned) = cts::unrecorded_findings(pct, store, &unrecorded, &interrupted);
    findings.extend(found);
    if !any_corrupt {
        findings.extend(leftovers::unreferenced_templates(pct, store, &records));
    }
    let monitors = leftovers::monitors(pct, store, &records, &on_node);
    findings.extend(locks::findings(pct));

    // A delete of the owner may have destroyed the CT and removed its record between
    // `pct list` and the read of the records: look again under the owner's lock.
    for (owner, vmid, finding) in owned {
        if unreadable.contains(owner.as_str()) || creating_now(store, &owner) {
            continue;
        }
        if confirmed(pct, store, &owner, |f| {
            f.vmid != Some(vmid) && f.on_node.contains(&vmid)
        }) {
            findings.push(finding);
        }
    }
    findings.extend(leftovers::monitors_still_there(pct, store, monitors)?);
    findings.extend(cts::gone(pct, store, &records, &on_node));
    findings.extend(pods::keepers_gone(pct, store, &records, &on_node));
    findings.extend(pods::members_orphaned(pct, store, &on_node));
    findings.extend(stale::findings(pct, store, &records, &on_node));
    Ok(findings)
}

/// What the backend holds: a record of a CT for each container. One whose CT is on the
/// node is vouched for (a record can be written back from the backend's); one whose CT
/// is gone is [`cts::gone`]'s.
pub(crate) fn held(pct: &Pct) -> Result<Vec<Held>> {
    let (records, corrupt) = backend_records(pct.root());
    let mut held: Vec<Held> = corrupt
        .iter()
        .filter_map(|(path, _)| {
            let id = ContainerId::new(path.file_stem()?.to_str()?).ok()?;
            Some(unreadable(id, path))
        })
        .collect();
    held.extend(pct.members_held());
    if records.is_empty() {
        return Ok(held);
    }
    let on_node = node_vmids(pct)?;
    held.extend(
        records
            .into_iter()
            .map(|(id, view)| one(pct, id, &view, on_node.contains(&view.vmid))),
    );
    Ok(held)
}

/// What the backend holds of `id` right now.
pub(crate) fn holds(pct: &Pct, id: &ContainerId) -> Result<Option<Held>> {
    let path = pct.root().join(format!("{id}.json"));
    if !path.exists() {
        return Ok(pct.member_holds(id));
    }
    let Ok(view) = read_view(&path) else {
        return Ok(Some(unreadable(id.clone(), &path)));
    };
    let on = node_vmids(pct)?.contains(&view.vmid);
    Ok(Some(one(pct, id.clone(), &view, on)))
}

/// What the backend holds of `id`: a record that vouches for the container only when its
/// VMID still holds the CT made for it (a stale record is `stale`'s finding).
/// A damaged record is reported on its own (`backend-record-corrupt`); the backend still
/// holds something for the id.
fn unreadable(id: ContainerId, path: &Path) -> Held {
    Held {
        id,
        location: path.display().to_string(),
        what: "its backend record does not parse".into(),
        record: None,
    }
}

fn one(pct: &Pct, id: ContainerId, view: &RecordView, on_node: bool) -> Held {
    let location = pct.root().join(format!("{id}.json")).display().to_string();
    let not_vouched = if !on_node {
        Some(format!("its CT {} is gone", view.vmid))
    } else if view.destroying {
        Some(format!("a delete of its CT {} stopped midway", view.vmid))
    } else if stale::proof(pct, &id, view) != Some(crate::identity::Proof::Ours) {
        Some(format!("VMID {} holds another CT", view.vmid))
    } else {
        None
    };
    if let Some(what) = not_vouched {
        return Held {
            id,
            location,
            what,
            record: None,
        };
    }
    Held {
        record: Some(Record::restored(
            id.clone(),
            NAME,
            view.bundle.clone(),
            view.created.clone(),
        )),
        what: format!("CT {} is this container's", view.vmid),
        id,
        location,
    }
}

/// What an interrupted create of `record` left: the CT the backend recorded, CTs tagged
/// with its id that no record names, its files. While a `pct create` whose proxcage died
/// still runs, the CT it makes cannot be told yet.
pub(crate) fn left_by(pct: &Pct, record: &Record) -> Result<Leftovers> {
    let id = record.id();
    let mut left = Leftovers::default();
    let (records, _) = backend_records(pct.root());
    if let Some(view) = records.get(id) {
        left.items.push(format!("CT {} (recorded)", view.vmid));
    }
    let cts = pct.tools().list().map_err(Error::from)?;
    let unrecorded = cts::unrecorded(pct, &cts, &records)?;
    for u in unrecorded
        .iter()
        .filter(|u| u.tagged && !u.foreign && u.owner.as_ref() == Some(id))
    {
        left.items
            .push(format!("CT {} (made, never recorded)", u.entry.vmid));
    }
    if let Some(files) = pct.own_files_dir(id).filter(|f| f.exists()) {
        left.items.push(files.display().to_string());
    }
    let creating_now = cts::creating_now(pct, &unrecorded);
    if !creating_now.is_empty() {
        left.busy = Some(format!(
            "pct create still runs for CT {}",
            creating_now.join(", ")
        ));
    }
    Ok(left)
}

fn remove_missing_ok(path: &Path) -> Result<()> {
    match crate::staging::remove_files_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("cannot remove", path, e)),
    }
}
