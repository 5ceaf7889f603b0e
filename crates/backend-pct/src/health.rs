//! `proxcage health` for the pct backend: the tools and storage on the host, and the CTs
//! reconciled with proxcage's records.
//!
//! Ownership: a CT is proxcage's when a record of this root names its VMID, or when it is
//! tagged `proxcage`, its description names a container id, and this root holds the
//! record of an interrupted create of that id (the crash between `pct create` and the
//! backend's record). Only such CTs are ever destroyed; any other CT tagged `proxcage` is
//! reported and left alone, since another proxcage root on the node may own it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proxcage_core::{
    ContainerId, DeleteRequest, Error, ErrorKind, Finding, Result, Runtime, Severity,
};
use proxcage_store::health::{
    self, interrupted_create_confirmed, restore_record, temp_file_finding, undo_interrupted_create,
};
use proxcage_store::{Backend, ContainerLock, Phase, Record, StateStore};
use serde::Deserialize;

use crate::backend::Pct;
use crate::error::PctError;
use crate::parse::ListEntry;
use crate::vmid::Vmid;
use crate::NAME;

/// The fields of the backend's per-container record the checks need.
#[derive(Debug, Deserialize)]
struct RecordView {
    vmid: Vmid,
    template: String,
    bundle: PathBuf,
    created: String,
    #[serde(default)]
    monitor: Option<i32>,
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
        let parsed = fs::read(entry.path())
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<RecordView>(&b).map_err(|e| e.to_string()));
        match parsed {
            Ok(view) => {
                good.insert(id, view);
            }
            Err(e) => bad.push((entry.path(), e)),
        }
    }
    (good, bad)
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
    let vmid = fs::read(pct.root().join(format!("{id}.json")))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<RecordView>(&bytes).ok())
        .map(|view| view.vmid);
    let on_node = pct
        .tools()
        .list()
        .map_err(Error::from)?
        .iter()
        .map(|entry| entry.vmid)
        .collect();
    Ok((
        lock,
        Fresh {
            core,
            vmid,
            on_node,
        },
    ))
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

/// What `pct config` says of a CT that no record names.
struct Unrecorded {
    entry: ListEntry,
    tagged: bool,
    /// The container id in a `proxcage container <id>` description.
    owner: Option<ContainerId>,
}

/// Reads the CT's tags and description from its `.conf` (one file read, where `pct
/// config` costs a Perl start-up per CT on Proxmox), or from `pct config` when the file
/// cannot be read.
/// `None` when the CT is gone by now (destroyed since `pct list`).
fn inspect(pct: &Pct, entry: ListEntry) -> Result<Option<Unrecorded>> {
    let conf = pct
        .pve_dir()
        .join("lxc")
        .join(format!("{}.conf", entry.vmid));
    let (tags, description) = match fs::read_to_string(&conf) {
        Ok(text) => {
            // The live config ends at the first snapshot section.
            let live = text.lines().take_while(|l| !l.starts_with('['));
            let mut tags = String::new();
            let mut description = String::new();
            for line in live {
                if let Some(comment) = line.strip_prefix('#') {
                    description.push_str(&percent_decode(comment));
                    description.push('\n');
                } else if let Some(value) = line.strip_prefix("tags:") {
                    tags = value.trim().to_string();
                }
            }
            (tags, description)
        }
        Err(_) => {
            let config = match pct.tools().config(entry.vmid) {
                Ok(config) => config,
                Err(e) if matches!(e.pct(), Some(PctError::NoSuchCt { .. })) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let get = |key: &str| {
                config
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            (get("tags"), percent_decode(&get("description")))
        }
    };
    let tagged = tags.split([';', ',', ' ']).any(|t| t.trim() == "proxcage");
    let owner = description
        .lines()
        .find_map(|l| l.trim().strip_prefix("proxcage container "))
        .and_then(|id| ContainerId::new(id.trim()).ok());
    Ok(Some(Unrecorded {
        entry,
        tagged,
        owner,
    }))
}

/// pct prints the description url-encoded.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `name` is a template the pct backend packs: `proxcage-<sha256>.tar.zst`.
fn is_proxcage_template(name: &str) -> bool {
    name.strip_prefix("proxcage-")
        .and_then(|n| n.strip_suffix(".tar.zst"))
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

pub(crate) fn check(pct: &Pct, store: &StateStore) -> Result<Vec<Finding>> {
    let mut findings = Vec::new();
    let backend = format!("backend {NAME}");

    // The host.
    let template_dir = pct.template_dir().to_path_buf();
    if !template_dir.is_dir() {
        findings.push(Finding::new(
            "template-dir-missing",
            Severity::Error,
            &backend,
            template_dir.display(),
            "the template directory does not exist: set [backends.pct] template_dir to the template storage's directory (pvesm path <storage>:vztmpl/x shows it)",
        ));
    } else if nix::unistd::access(&template_dir, nix::unistd::AccessFlags::W_OK).is_err() {
        findings.push(Finding::new(
            "template-dir-not-writable",
            Severity::Error,
            &backend,
            template_dir.display(),
            "proxcage cannot write templates here: run as root",
        ));
    }
    if let Err(e) = pct.tools().next_id(None) {
        findings.push(Finding::new(
            "pvesh-failed",
            Severity::Error,
            &backend,
            pct.tools().pvesh.display(),
            format!("pvesh cannot give a free VMID, so no create can work: {e}"),
        ));
    }
    // pct list failing means nothing below can be checked.
    let cts = pct.tools().list().map_err(Error::from)?;
    let range = pct.range();
    if range != crate::VmidRange::default() {
        let size = u64::from(range.last().get() - range.first().get()) + 1;
        let used = cts.iter().filter(|c| range.contains(c.vmid)).count() as u64;
        if used >= size {
            findings.push(Finding::new(
                "vmid-range-full",
                Severity::Error,
                &backend,
                format!("vmid_range {range}"),
                format!("every VMID of the configured range is taken by a CT ({used} of {size}): widen [backends.pct] vmid_range"),
            ));
        }
    }

    // A consistent view: no create of this root packs a template or makes a CT meanwhile.
    // While a create holds the lock longer (it starts the CT and waits for its init), the
    // CTs and templates not recorded yet are left for the next check.
    let root = pct.root().to_path_buf();
    let held = if root.exists() {
        Pct::flock(&root.join("vmid.lock"), Duration::from_secs(5)).ok()
    } else {
        None
    };
    let busy = root.exists() && held.is_none();
    let (records, corrupt) = backend_records(&root);
    for (path, e) in corrupt {
        findings.push(Finding::new(
            "backend-record-corrupt",
            Severity::Error,
            format!(
                "container {}",
                path.file_stem().unwrap_or_default().to_string_lossy()
            ),
            path.display(),
            format!("the pct backend's record (the CT's VMID) does not parse: {e}; find the CT tagged proxcage whose description names the container, then 'pct destroy <vmid> --force 1 --purge 1' and remove this file"),
        ));
    }
    for tmp in temp_files(&root) {
        findings.push(temp_file_finding(tmp, backend.clone()));
    }

    let on_node: BTreeMap<Vmid, &ListEntry> = cts.iter().map(|c| (c.vmid, c)).collect();
    let recorded_vmids: BTreeSet<Vmid> = records.values().map(|r| r.vmid).collect();
    let mut unrecorded = Vec::new();
    for entry in cts.iter().filter(|c| !recorded_vmids.contains(&c.vmid)) {
        unrecorded.extend(inspect(pct, entry.clone())?);
    }
    let core = health::records_of(store, NAME)?;
    let interrupted: BTreeSet<ContainerId> = core
        .iter()
        .filter(|r| interrupted_create_confirmed(store, r))
        .map(|r| r.id().clone())
        .collect();
    // A `pct create` whose proxcage was killed runs on and tags its CT only at its end:
    // until it finished, the CT an interrupted create made cannot be told.
    let creating_now: Vec<String> = unrecorded
        .iter()
        .filter(|u| !u.tagged && u.entry.lock == "create" && pct_config_locked(pct, u.entry.vmid))
        .map(|u| u.entry.vmid.to_string())
        .collect();

    // CTs no record names.
    let mut owned_unrecorded = Vec::new();
    for u in unrecorded.iter().filter(|_| !busy) {
        let vmid = u.entry.vmid;
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
                Some(owner) => owned_unrecorded.push((owner.clone(), vmid, finding)),
                None => findings.push(finding),
            }
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

    let monitors = if busy {
        Vec::new()
    } else {
        leftover_monitors(pct, &records, &on_node)
    };

    // Templates no container of this root uses.
    let referenced: BTreeSet<&str> = records.values().map(|r| r.template.as_str()).collect();
    let listed = if busy {
        Err(io::Error::other("a create holds the backend's lock"))
    } else {
        fs::read_dir(&template_dir)
    };
    if let Ok(entries) = listed {
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| is_proxcage_template(n) && !referenced.contains(n.as_str()))
            .collect();
        names.sort();
        for name in names {
            let path = template_dir.join(&name);
            let root = root.clone();
            findings.push(
                Finding::new(
                    "template-unreferenced",
                    Severity::Warning,
                    format!("template {name}"),
                    path.display(),
                    "a template the pct backend packed that no container of this root uses (left by a create that died, or by 'proxcage template create')",
                )
                .with_repair("remove the template (it is packed again from the bundle when needed)", move || {
                    remove_unreferenced_template(&root, &path, &name)
                }),
            );
        }
    }
    // What follows is judged again under each container's lock, so only now, without the
    // backend's: a create takes its container's lock first, then the backend's.
    drop(held);

    // A delete of the owner may have destroyed the CT and removed its record between
    // `pct list` and the read of the records: look again under the owner's lock.
    for (owner, vmid, finding) in owned_unrecorded {
        if confirmed(pct, store, &owner, |f| {
            f.vmid != Some(vmid) && f.on_node.contains(&vmid)
        }) {
            findings.push(finding);
        }
    }

    if !monitors.is_empty() {
        // A monitor outlives its CT by the moment it takes to see the init gone and pass
        // on the exit status: only one still there a second later is left over.
        std::thread::sleep(Duration::from_secs(1));
        let (records, _) = backend_records(&root);
        let cts = pct.tools().list().map_err(Error::from)?;
        let on_node: BTreeMap<Vmid, &ListEntry> = cts.iter().map(|c| (c.vmid, c)).collect();
        let seen: BTreeSet<String> = monitors.iter().map(|f| f.object().to_string()).collect();
        findings.extend(
            leftover_monitors(pct, &records, &on_node)
                .into_iter()
                .filter(|f| seen.contains(f.object())),
        );
    }

    for record in core {
        let id = record.id().clone();
        let object = format!("container {id}");
        let mine = records.get(&id);
        if interrupted.contains(&id) {
            let mut left = Vec::new();
            if let Some(view) = mine {
                left.push(format!("CT {} (recorded)", view.vmid));
            }
            for u in unrecorded
                .iter()
                .filter(|u| u.tagged && u.owner.as_ref() == Some(&id))
            {
                left.push(format!("CT {} (made, never recorded)", u.entry.vmid));
            }
            if pct.files_root().join(id.as_str()).exists() {
                left.push(format!("{}", pct.files_root().join(id.as_str()).display()));
            }
            let left = if left.is_empty() {
                String::new()
            } else {
                format!("; it left {}", left.join(", "))
            };
            let finding = Finding::new(
                "create-interrupted",
                Severity::Error,
                object,
                store.root().join("containers").join(id.as_str()).display(),
                format!(
                    "its create never finished: proxcage process {} died midway{left}",
                    record.creator_pid().unwrap_or(0)
                ),
            );
            if !creating_now.is_empty() {
                findings.push(Finding::new(
                    finding.kind(),
                    finding.severity(),
                    finding.object(),
                    finding.location(),
                    format!(
                        "{}; pct create still runs for CT {}: check again once it finished",
                        finding.message(),
                        creating_now.join(", ")
                    ),
                ));
                continue;
            }
            let (pct, store) = (pct.clone(), store.clone());
            findings.push(
                finding.with_repair(
                    "destroy the CT that create made (tagged proxcage, its description naming this container), remove its files and the record; the caller was never told the create succeeded",
                    move || undo_interrupted_create(&store, &record, |r| pct.recover(r)),
                ),
            );
            continue;
        }
        if record.phase() != Phase::Created {
            continue;
        }
        match mine {
            Some(view) if !on_node.contains_key(&view.vmid) => {
                let vmid = view.vmid;
                let holds = {
                    let record = record.clone();
                    move |f: &Fresh| {
                        f.core.as_ref() == Some(&record)
                            && f.vmid == Some(vmid)
                            && f.ct_on_node() == Some(false)
                    }
                };
                if !confirmed(pct, store, &id, &holds) {
                    continue;
                }
                let (pct, store) = (pct.clone(), store.clone());
                findings.push(
                    Finding::new(
                        "ct-gone",
                        Severity::Error,
                        object,
                        format!("pct:{vmid}"),
                        format!("its CT {vmid} no longer exists on this node (destroyed by hand, or migrated)"),
                    )
                    .with_repair(
                        "forget the container: its record, its files, and its template if no other container uses it",
                        move || {
                            repair_if(&pct, &store, &id, holds, |lock| {
                                delete_forced(&pct, &id)?;
                                lock.remove()?;
                                Ok(format!("forgot container {id}, whose CT {vmid} was gone"))
                            })
                        },
                    ),
                );
            }
            Some(_) => {}
            None => {
                let holds = {
                    let record = record.clone();
                    move |f: &Fresh| f.core.as_ref() == Some(&record) && f.vmid.is_none()
                };
                if !confirmed(pct, store, &id, &holds) {
                    continue;
                }
                let (pct, store) = (pct.clone(), store.clone());
                findings.push(
                    Finding::new(
                        "container-gone",
                        Severity::Error,
                        object,
                        root.join(format!("{id}.json")).display(),
                        "recorded, but the pct backend has no record of its CT (removed by hand?)",
                    )
                    .with_repair("remove the record", move || {
                        repair_if(&pct, &store, &id, holds, |lock| {
                            lock.remove()?;
                            Ok(format!("removed the record of container {id}"))
                        })
                    }),
                );
            }
        }
    }

    // Backend records without a proxcage record.
    for (id, view) in &records {
        if health::known(store, id) {
            continue;
        }
        let object = format!("container {id}");
        let location = root.join(format!("{id}.json")).display().to_string();
        let (vmid, on) = (view.vmid, on_node.contains_key(&view.vmid));
        let holds =
            move |f: &Fresh| f.core.is_none() && f.vmid == Some(vmid) && f.ct_on_node() == Some(on);
        if !confirmed(pct, store, id, holds) {
            continue;
        }
        if on {
            let record =
                Record::restored(id.clone(), NAME, view.bundle.clone(), view.created.clone());
            let store = store.clone();
            findings.push(
                Finding::new(
                    "record-missing",
                    Severity::Error,
                    object,
                    location,
                    format!("CT {vmid} is this container's, but proxcage has no record of it (removed by hand?)"),
                )
                .with_repair("write a new record from the pct backend's", move || {
                    restore_record(&store, &record)
                }),
            );
        } else {
            let (pct, store, id) = (pct.clone(), store.clone(), id.clone());
            findings.push(
                Finding::new(
                    "ct-gone",
                    Severity::Error,
                    object,
                    format!("pct:{vmid}"),
                    format!("neither proxcage's record nor CT {vmid} exists any more; only the pct backend's record is left"),
                )
                .with_repair("forget the container: the backend's record, its files, its template if unused", move || {
                    repair_if(&pct, &store, &id, holds, |_lock| {
                        delete_forced(&pct, &id)?;
                        Ok(format!("forgot container {id}"))
                    })
                }),
            );
        }
    }

    Ok(findings)
}

/// Monitors (`<files_dir>/<id>/init --monitor ...`, see `crate::monitor`) that no running
/// container of this root has: left by a create that died before the CT's init reached
/// the monitor (it then waits forever), or of a container whose record is gone. Ours by
/// their executable's path; the repair kills them.
fn leftover_monitors(
    pct: &Pct,
    records: &BTreeMap<ContainerId, RecordView>,
    on_node: &BTreeMap<Vmid, &ListEntry>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (pid, id) in monitor_processes(pct.files_root()) {
        let record = ContainerId::new(&id).ok().and_then(|id| records.get(&id));
        let running = record
            .and_then(|r| on_node.get(&r.vmid))
            .is_some_and(|entry| entry.status == "running");
        let its_own = record.is_some_and(|r| r.monitor == Some(pid));
        if running && its_own {
            continue;
        }
        let why = match record {
            None => "no container of this root has that id".to_string(),
            Some(r) if !its_own => {
                format!("the container's monitor is {:?}, not this one", r.monitor)
            }
            Some(r) => format!("its CT {} is not running", r.vmid),
        };
        findings.push(
            Finding::new(
                "monitor-leftover",
                Severity::Warning,
                format!("monitor {pid}"),
                format!("pid {pid}"),
                format!("a monitor for container {id} that no running container needs: {why}"),
            )
            .with_repair("kill the monitor (SIGKILL)", move || {
                match nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                ) {
                    Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(format!("killed monitor {pid}")),
                    Err(e) => Err(Error::io(
                        "cannot kill",
                        Path::new(&format!("/proc/{pid}")),
                        e.into(),
                    )),
                }
            }),
        );
    }
    findings
}

/// Processes whose command line is `<files_root>/<id>/init --monitor ...`: (pid, id).
fn monitor_processes(files_root: &Path) -> Vec<(i32, String)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let mut args = cmdline.split(|&b| b == 0);
        let (Some(exe), Some(b"--monitor")) = (args.next(), args.next()) else {
            continue;
        };
        let exe = Path::new(std::ffi::OsStr::from_bytes(exe));
        let id = exe
            .strip_prefix(files_root)
            .ok()
            .filter(|rest| rest.file_name() == Some("init".as_ref()))
            .and_then(|rest| rest.parent())
            .and_then(|dir| dir.to_str())
            .filter(|dir| !dir.is_empty() && !dir.contains('/'));
        if let Some(id) = id {
            found.push((pid, id.to_string()));
        }
    }
    found.sort();
    found
}

/// `<id>.json.tmp.<pid>` files of record writes whose process is gone.
fn temp_files(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.rsplit_once(".json.tmp.")
                .and_then(|(_, pid)| pid.parse::<u32>().ok())
                .is_some_and(|pid| !proxcage_process::pid_alive(pid))
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
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

fn remove_unreferenced_template(root: &Path, path: &Path, name: &str) -> Result<String> {
    let _held = Pct::flock(&root.join("vmid.lock"), Duration::from_secs(60))?;
    let (records, _) = backend_records(root);
    if records.values().any(|r| r.template == name) {
        return Ok(format!("kept {name}: a container uses it now"));
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(format!("removed {}", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(format!("{name} is gone already")),
        Err(e) => Err(Error::io("cannot remove", path, e)),
    }
}

fn delete_forced(pct: &Pct, id: &ContainerId) -> Result<()> {
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
    if pct.root().join(format!("{id}.json")).exists() {
        return delete_forced(pct, id);
    }
    let (records, _) = backend_records(pct.root());
    let recorded: BTreeSet<Vmid> = records.values().map(|r| r.vmid).collect();
    let tools = pct.tools();
    for entry in tools.list().map_err(Error::from)? {
        if recorded.contains(&entry.vmid) {
            continue;
        }
        let Some(u) = inspect(pct, entry)? else {
            continue;
        };
        if !(u.tagged && u.owner.as_ref() == Some(id)) {
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
    let files = pct.files_root().join(id.as_str());
    match fs::remove_dir_all(&files) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("cannot remove", &files, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_and_templates() {
        assert_eq!(
            percent_decode("proxcage%20container%20web-1%0A"),
            "proxcage container web-1\n"
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert!(is_proxcage_template(&format!(
            "proxcage-{}.tar.zst",
            "a".repeat(64)
        )));
        assert!(!is_proxcage_template("proxcage-abc.tar.zst"));
        assert!(!is_proxcage_template("debian-12.tar.zst"));
    }
}
