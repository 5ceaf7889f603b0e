//! What is left over: backend records that do not parse, temp files of writes that
//! never finished, templates no container uses, monitors no container needs.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proxcage_core::{ContainerId, Error, Finding, Result, Severity};

use proxcage_core::{DeleteRequest, Runtime};
use proxcage_store::StateStore;

use super::{backend_records, repair_if, Fresh, RecordView};
use crate::backend::Pct;
use crate::identity;
use crate::parse::ListEntry;
use crate::templates::Templates;
use crate::vmid::Vmid;

/// Backend records that do not parse. The repair writes the record again from the CT
/// this root made for the container (its description names both), with proxcage's record
/// for the bundle; without proxcage's record it deletes the container (its CT only if
/// proven the container's).
pub(super) fn corrupt_records(
    pct: &Pct,
    store: &StateStore,
    corrupt: Vec<(PathBuf, String)>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (path, e) in corrupt {
        let name = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let finding = Finding::new(
            "backend-record-corrupt",
            Severity::Error,
            format!("container {name}"),
            path.display(),
            format!("the pct backend's record (the CT's VMID) does not parse: {e}; until it is written again, no template is judged unreferenced"),
        );
        let Ok(id) = ContainerId::new(&name) else {
            findings.push(finding);
            continue;
        };
        let (pct, store) = (pct.clone(), store.clone());
        let holds = |f: &Fresh| f.vmid.is_none();
        findings.push(finding.with_repair(
            "write the record again from the CT whose description names the container",
            move || {
                repair_if(&pct, &store, &id, holds, |lock| {
                    let Some(core) = lock.record()? else {
                        pct.delete(DeleteRequest { id: &id, force: true })?;
                        return Ok(format!("deleted container {id}, which proxcage had no record of"));
                    };
                    let monitor = monitor_processes(&pct, &BTreeMap::new())
                        .into_iter()
                        .find(|(_, of)| *of == id.as_str())
                        .map(|(pid, _)| pid);
                    match pct.rebuild_record(&id, core.bundle(), core.created(), monitor)? {
                        Some(vmid) => Ok(format!("wrote the record of container {id} again from CT {vmid}")),
                        None => Err(Error::Conflict {
                            id: id.clone(),
                            message: format!("no single CT of the node has a description naming it and this root: 'proxcage delete --force {id}' removes it"),
                        }),
                    }
                })
            },
        ));
    }
    findings
}

/// Whether `name` is a template the pct backend packs: `proxcage-<sha256>.tar.zst`.
fn is_proxcage_template(name: &str) -> bool {
    name.strip_prefix("proxcage-")
        .and_then(|n| n.strip_suffix(".tar.zst"))
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Templates the pct backend packed that no container of any root uses: no reference
/// (see `crate::templates`) but this root's own stale ones (of a container id that has
/// no record and no create running), and no record of this root naming it.
pub(super) fn unreferenced_templates(
    pct: &Pct,
    store: &StateStore,
    records: &BTreeMap<ContainerId, RecordView>,
) -> Vec<Finding> {
    let referenced: BTreeSet<&str> = records.values().map(|r| r.template.as_str()).collect();
    let template_dir = pct.template_dir();
    let Ok(entries) = fs::read_dir(template_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_proxcage_template(n) && !referenced.contains(n.as_str()))
        .collect();
    names.sort();
    let templates = Templates::new(template_dir);
    let token = identity::read_token(pct.root()).ok().flatten();
    let mut findings = Vec::new();
    for name in names {
        let users = templates.users(&name);
        let stale: Vec<ContainerId> = users
            .iter()
            .filter(|u| Some(&u.root) == token.as_ref())
            .filter_map(|u| ContainerId::new(&u.id).ok())
            .filter(|id| !has_record(pct, id) && !super::creating_now(store, id))
            .collect();
        if users.len() > stale.len() {
            continue;
        }
        let path = template_dir.join(&name);
        let why = if stale.is_empty() {
            "a template the pct backend packed that no container uses (left by a create that died, or by 'proxcage template create')".to_string()
        } else {
            format!("a template the pct backend packed whose only references are this root's, of containers that no longer exist ({}): left by creates or deletes that died", stale.iter().map(|id| id.to_string()).collect::<Vec<_>>().join(", "))
        };
        let (pct, store, token) = (pct.clone(), store.clone(), token.clone());
        findings.push(
            Finding::new(
                "template-unreferenced",
                Severity::Warning,
                format!("template {name}"),
                path.display(),
                why,
            )
            .with_repair(
                "remove this root's stale references and the template if none is left (it is packed again from the bundle when needed)",
                move || remove_unreferenced_template(&pct, &store, &name, token.as_deref(), stale),
            ),
        );
    }
    findings
}

fn has_record(pct: &Pct, id: &ContainerId) -> bool {
    pct.root().join(format!("{id}.json")).exists()
}

/// Under the locks of the containers whose references were judged stale (so no create of
/// them runs), and the template's: their references go if they still have no record,
/// then the template if nothing else refers to it.
fn remove_unreferenced_template(
    pct: &Pct,
    store: &StateStore,
    name: &str,
    token: Option<&str>,
    mut stale: Vec<ContainerId>,
) -> Result<String> {
    stale.sort();
    let mut held = Vec::new();
    for id in &stale {
        held.push(store.lock_new(id)?);
    }
    let templates = Templates::new(pct.template_dir());
    templates.remove_unreferenced(
        name,
        token,
        |id| {
            stale
                .iter()
                .any(|s| s.as_str() == id && !has_record(pct, s))
        },
        || {
            let (records, _) = backend_records(pct.root());
            records.values().any(|r| r.template == name)
        },
    )
}

/// A monitor outlives its CT by the moment it takes to see the init gone and pass on the
/// exit status: of the `seen` leftover monitors, those still left over a second later.
pub(super) fn monitors_still_there(
    pct: &Pct,
    store: &StateStore,
    seen: Vec<Finding>,
) -> Result<Vec<Finding>> {
    if seen.is_empty() {
        return Ok(seen);
    }
    std::thread::sleep(Duration::from_secs(1));
    let (records, _) = backend_records(pct.root());
    let cts = pct.tools().list().map_err(Error::from)?;
    let on_node: BTreeMap<Vmid, &ListEntry> = cts.iter().map(|c| (c.vmid, c)).collect();
    let seen: BTreeSet<String> = seen.iter().map(|f| f.object().to_string()).collect();
    Ok(monitors(pct, store, &records, &on_node)
        .into_iter()
        .filter(|f| seen.contains(f.object()))
        .collect())
}

/// Monitors of this root (see [`monitor_processes`]) that no running container of this
/// root has: left by a create that died before the CT's init reached the monitor (it
/// then waits forever), or of a container whose record is gone. The repair kills them.
pub(super) fn monitors(
    pct: &Pct,
    store: &StateStore,
    records: &BTreeMap<ContainerId, RecordView>,
    on_node: &BTreeMap<Vmid, &ListEntry>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (pid, id) in monitor_processes(pct, records) {
        let record = ContainerId::new(&id).ok().and_then(|id| records.get(&id));
        if record.is_none() && pct.root().join(format!("{id}.json")).exists() {
            // Its record does not parse (backend-record-corrupt): its monitor may be needed.
            continue;
        }
        if record.is_none() && ContainerId::new(&id).is_ok_and(|id| super::creating_now(store, &id))
        {
            // A create that has not recorded it yet.
            continue;
        }
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

/// This root's monitors, as (pid, container id): processes whose command line is
/// `<files_dir>/<root key>/<id>/init --monitor ...` (see `Pct::files_dir_for`), and of
/// containers made before roots had their own files directory, `<files_dir>/<id>/init`
/// only where this root's record names the process (another root's may have that path).
fn monitor_processes(pct: &Pct, records: &BTreeMap<ContainerId, RecordView>) -> Vec<(i32, String)> {
    let key = identity::read_token(pct.root()).ok().flatten().map(|t| {
        t.chars()
            .take(crate::backend::FILES_KEY_LEN)
            .collect::<String>()
    });
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
        let Ok(rest) = Path::new(std::ffi::OsStr::from_bytes(exe)).strip_prefix(pct.files_root())
        else {
            continue;
        };
        let parts: Vec<&str> = rest.iter().filter_map(|p| p.to_str()).collect();
        match parts.as_slice() {
            [k, id, "init"] if key.as_deref() == Some(*k) => found.push((pid, id.to_string())),
            [id, "init"] => {
                let legacy = ContainerId::new(*id).ok().and_then(|id| records.get(&id));
                if legacy.is_some_and(|r| r.files_dir.is_none() && r.monitor == Some(pid)) {
                    found.push((pid, id.to_string()));
                }
            }
            _ => {}
        }
    }
    found.sort();
    found
}

/// `<id>.json.tmp.<pid>` files of record writes whose process is gone.
/// Temp files of template packs whose process died (a SIGKILL while packing), in the
/// template directory.
pub(super) fn abandoned_packs(pct: &Pct) -> Vec<PathBuf> {
    let dir = pct.template_dir();
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            proxcage_oci::template::is_abandoned_pack(dir, &name)
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

pub(super) fn temp_files(root: &Path) -> Vec<PathBuf> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxcage_templates_are_told_by_name() {
        assert!(is_proxcage_template(&format!(
            "proxcage-{}.tar.zst",
            "a".repeat(64)
        )));
        assert!(!is_proxcage_template("proxcage-abc.tar.zst"));
        assert!(!is_proxcage_template("debian-12.tar.zst"));
    }
}
