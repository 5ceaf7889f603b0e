//! What is left over: backend records that do not parse, temp files of writes that
//! never finished, templates no container uses, monitors no container needs.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proxcage_core::{ContainerId, Error, Finding, Result, Severity};

use proxcage_core::{DeleteRequest, Runtime};
use proxcage_store::StateStore;

use super::{backend_records, repair_if, Fresh, RecordView};
use crate::backend::Pct;
use crate::parse::ListEntry;
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
                    let monitor = monitor_processes(pct.files_root())
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

/// Templates the pct backend packed that no container of this root uses.
pub(super) fn unreferenced_templates(
    pct: &Pct,
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
    names
        .into_iter()
        .map(|name| {
            let path = template_dir.join(&name);
            let root = pct.root().to_path_buf();
            Finding::new(
                "template-unreferenced",
                Severity::Warning,
                format!("template {name}"),
                path.display(),
                "a template the pct backend packed that no container of this root uses (left by a create that died, or by 'proxcage template create')",
            )
            .with_repair("remove the template (it is packed again from the bundle when needed)", move || {
                remove_unreferenced_template(&root, &path, &name)
            })
        })
        .collect()
}

/// A monitor outlives its CT by the moment it takes to see the init gone and pass on the
/// exit status: of the `seen` leftover monitors, those still left over a second later.
pub(super) fn monitors_still_there(pct: &Pct, seen: Vec<Finding>) -> Result<Vec<Finding>> {
    if seen.is_empty() {
        return Ok(seen);
    }
    std::thread::sleep(Duration::from_secs(1));
    let (records, _) = backend_records(pct.root());
    let cts = pct.tools().list().map_err(Error::from)?;
    let on_node: BTreeMap<Vmid, &ListEntry> = cts.iter().map(|c| (c.vmid, c)).collect();
    let seen: BTreeSet<String> = seen.iter().map(|f| f.object().to_string()).collect();
    Ok(monitors(pct, &records, &on_node)
        .into_iter()
        .filter(|f| seen.contains(f.object()))
        .collect())
}

/// Monitors (`<files_dir>/<id>/init --monitor ...`, see `crate::monitor`) that no running
/// container of this root has: left by a create that died before the CT's init reached
/// the monitor (it then waits forever), or of a container whose record is gone. Ours by
/// their executable's path; the repair kills them.
pub(super) fn monitors(
    pct: &Pct,
    records: &BTreeMap<ContainerId, RecordView>,
    on_node: &BTreeMap<Vmid, &ListEntry>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (pid, id) in monitor_processes(pct.files_root()) {
        let record = ContainerId::new(&id).ok().and_then(|id| records.get(&id));
        if record.is_none() && pct.root().join(format!("{id}.json")).exists() {
            // Its record does not parse (backend-record-corrupt): its monitor may be needed.
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
