//! The store's own health checks, and the pieces the backends' checks share: creates
//! that died midway, records to forget or restore, temp files of writes that never
//! finished.
//!
//! Repairs are the least destructive fix that makes the state consistent again, and never
//! touch a container proxcage did not create: a backend container is only removed when a
//! record of this root proves proxcage made it.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use proxcage_core::{ContainerId, Error, Finding, Result, Severity};
use proxcage_process::{pid_alive, started_at};

use crate::backend::Backend;
use crate::stale::{describe_stale, locked, stale_lock, StaleLock};
use crate::store::{Phase, Record, StateStore};

/// True when `record` is a create whose proxcage process is gone: it died (or the host
/// rebooted) before the create finished. A pid taken over since by a process that started
/// after the record was written does not count as the creator.
pub fn create_interrupted(record: &Record) -> bool {
    let (Phase::Creating, Some(pid)) = (record.phase(), record.creator_pid()) else {
        return false;
    };
    if pid == std::process::id() {
        return false;
    }
    if !pid_alive(pid) {
        return true;
    }
    let created = time::OffsetDateTime::parse(
        record.created(),
        &time::format_description::well_known::Rfc3339,
    )
    .map(|t| t.unix_timestamp());
    match (created, started_at(pid)) {
        // One second of slack: /proc's start time is rounded down to clock ticks.
        (Ok(created), Some(started)) => started > created + 1,
        _ => false,
    }
}

/// Whether `record`, read without the container's lock, still holds with nobody working
/// on the container: its lock is free now and the record read after is the same. A
/// create holds the lock until its record says `created`, a delete until the record is
/// gone; a record caught in between (a create that finished since and looks interrupted,
/// a delete that removed the container but not yet the record) is not settled.
pub fn record_settled(store: &StateStore, record: &Record) -> bool {
    let dir = store.container_dir(record.id());
    !locked(&dir) && matches!(store.read(record.id()), Ok(Some(current)) if current == *record)
}

/// Whether the create of `record` was interrupted, confirmed with [`record_settled`].
pub fn interrupted_create_confirmed(store: &StateStore, record: &Record) -> bool {
    create_interrupted(record) && record_settled(store, record)
}

/// The repair of an interrupted create: under the container's lock, and only while the
/// record is still `expected` and still interrupted, `undo` what the create made, then
/// remove the record. A create that finished since the check is left alone.
pub fn undo_interrupted_create(
    store: &StateStore,
    expected: &Record,
    undo: impl FnOnce(&Record) -> Result<()>,
) -> Result<String> {
    let id = expected.id();
    let Some(lock) = store.lock_existing(id)? else {
        return Ok(format!("container {id} has no record any more"));
    };
    match lock.record()? {
        Some(current) if current == *expected && create_interrupted(&current) => {
            undo(&current)?;
            lock.remove()?;
            Ok(format!(
                "cleaned up the interrupted create of container {id} and removed its record"
            ))
        }
        Some(_) => Err(Error::Conflict {
            id: id.clone(),
            message: "its record changed since the check (its create finished); run health again"
                .into(),
        }),
        None => Ok(format!("container {id} has no record any more")),
    }
}

/// Temp files of writes that never finished: `<prefix><pid>` whose writer is gone.
pub fn dead_temp_files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(prefix))
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| !pid_alive(pid))
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// A finding for a temp file an interrupted write left, with its removal as the repair.
pub fn temp_file_finding(path: PathBuf, object: impl Into<String>) -> Finding {
    let shown = path.display().to_string();
    Finding::new(
        "temp-file",
        Severity::Warning,
        object,
        &shown,
        "a temp file of a write that never finished (its process is gone)",
    )
    .with_repair("remove the temp file", move || {
        remove_file(&path)?;
        Ok(format!("removed {}", path.display()))
    })
}

fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("cannot remove", path, e)),
    }
}

/// Removes `id`'s record if it is still `expected` (nothing changed it since the check).
pub fn forget_record(store: &StateStore, id: &ContainerId, expected: &Record) -> Result<String> {
    let Some(lock) = store.lock_existing(id)? else {
        return Ok(format!("container {id} has no record any more"));
    };
    match lock.record()? {
        Some(current) if current == *expected => {
            lock.remove()?;
            Ok(format!("removed the record of container {id}"))
        }
        Some(_) => Err(Error::Conflict {
            id: id.clone(),
            message: "its record changed since the check; run health again".into(),
        }),
        None => Ok(format!("container {id} has no record any more")),
    }
}

/// Writes `record` for a container that has none (a backend container whose record was
/// lost); refuses if a record appeared meanwhile.
pub fn restore_record(store: &StateStore, record: &Record) -> Result<String> {
    let id = record.id();
    let lock = store.lock_new(id)?;
    if lock.record()?.is_some() {
        return Err(Error::AlreadyExists { id: id.clone() });
    }
    lock.write(record)?;
    Ok(format!(
        "wrote a new record for container {id} (backend {})",
        record.backend()
    ))
}

/// The store's own checks: the root's permissions, every container directory (its lock,
/// temp files, whether its record parses and names a backend this build has), and the
/// store-wide lock. `backends`: the backends this build has. Interrupted creates and
/// records whose container is gone are the backends' to find ([`crate::Reconcile`]).
pub fn check_store(store: &StateStore, backends: &[&str]) -> Result<Vec<Finding>> {
    let mut findings = Vec::new();
    check_root(store.root(), &mut findings)?;
    let containers = store.root().join("containers");
    let entries = fs::read_dir(&containers)
        .map_err(|e| Error::io("cannot read the state directory", &containers, e))?;
    let mut names: Vec<(String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    names.sort();
    for (name, path) in names {
        match ContainerId::new(&name) {
            Ok(id) => check_container_dir(store, &id, &path, backends, &mut findings),
            Err(_) if name.starts_with(REPAIR_PREFIX) => {
                let shown = path.display().to_string();
                findings.push(
                    Finding::new(
                        "leftover-directory",
                        Severity::Warning,
                        format!("directory {name}"),
                        &shown,
                        "left by a health repair that did not finish",
                    )
                    .with_repair("remove the directory", move || {
                        fs::remove_dir_all(&path)
                            .map_err(|e| Error::io("cannot remove", &path, e))?;
                        Ok(format!("removed {}", path.display()))
                    }),
                );
            }
            Err(_) => {}
        }
    }
    let store_lock = store.root().join("store.lock");
    if let Some(stale) = stale_lock(&store_lock) {
        findings.push(stale_lock_finding(
            "the store",
            store_lock.clone(),
            &stale,
            move || {
                replace_file(&store_lock)?;
                Ok(format!(
                    "replaced {} (the stale lock stays on the old file)",
                    store_lock.display()
                ))
            },
        ));
    }
    Ok(findings)
}

/// Names of the store's own scratch directories in `containers/`: never a valid id.
const REPAIR_PREFIX: &str = "~";

fn check_root(root: &Path, findings: &mut Vec<Finding>) -> Result<()> {
    let meta = fs::metadata(root).map_err(|e| Error::io("cannot stat the root", root, e))?;
    if nix::unistd::access(root, nix::unistd::AccessFlags::W_OK).is_err() {
        findings.push(Finding::new(
            "root-not-writable",
            Severity::Error,
            "the state root",
            root.display(),
            "proxcage cannot write here: run as the user that owns it, or pick another --root",
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        let root = root.to_path_buf();
        findings.push(
            Finding::new(
                "root-permissions",
                Severity::Warning,
                "the state root",
                root.display(),
                format!("mode {mode:04o} lets other users change container records"),
            )
            .with_repair("remove group and other write permission", move || {
                let new = mode & !0o022;
                fs::set_permissions(&root, fs::Permissions::from_mode(new))
                    .map_err(|e| Error::io("cannot change the mode of", &root, e))?;
                Ok(format!("set the mode of {} to {new:04o}", root.display()))
            }),
        );
    }
    Ok(())
}

fn check_container_dir(
    store: &StateStore,
    id: &ContainerId,
    dir: &Path,
    backends: &[&str],
    findings: &mut Vec<Finding>,
) {
    if !dir.is_dir() {
        return;
    }
    let object = format!("container {id}");
    let stale = stale_lock(dir);
    if let Some(stale) = &stale {
        let (store, id2) = (store.clone(), id.clone());
        findings.push(stale_lock_finding(
            &object,
            dir.to_path_buf(),
            stale,
            move || store.replace_container_dir(&id2),
        ));
    }
    for tmp in dead_temp_files(dir, crate::store::TMP_PREFIX) {
        findings.push(temp_file_finding(tmp, object.clone()));
    }
    let unclaimed = stale.is_none() && !locked(dir);
    findings.extend(record_finding(store, id, dir, backends, unclaimed, object));
}

/// What is wrong with the record in `dir`, if anything. `unclaimed`: no create holds the
/// directory, so a missing record means one died before writing it.
fn record_finding(
    store: &StateStore,
    id: &ContainerId,
    dir: &Path,
    backends: &[&str],
    unclaimed: bool,
    object: String,
) -> Option<Finding> {
    let record_path = dir.join(crate::store::RECORD);
    match store.read(id) {
        Ok(Some(record)) if !backends.contains(&record.backend()) => Some(Finding::new(
            "record-backend-unknown",
            Severity::Error,
            object,
            record_path.display(),
            format!(
                "the record names backend {:?}, which this proxcage does not have ({}); use the proxcage build that created it",
                record.backend(),
                backends.join(", ")
            ),
        )),
        Ok(Some(_)) => None,
        Ok(None) if unclaimed => {
            let (store, id) = (store.clone(), id.clone());
            Some(
                Finding::new(
                    "empty-directory",
                    Severity::Warning,
                    object,
                    dir.display(),
                    "a container directory without a record: a create died before writing it",
                )
                .with_repair("remove the empty container directory", move || {
                    // Dropping the lock of a directory without a record removes it.
                    drop(store.lock_existing(&id)?);
                    Ok(format!("removed the directory of container {id}"))
                }),
            )
        }
        Ok(None) => None,
        Err(e @ Error::CorruptRecord { .. }) => {
            let (store, id, path) = (store.clone(), id.clone(), record_path.clone());
            Some(
                Finding::new(
                    "record-corrupt",
                    Severity::Error,
                    object,
                    record_path.display(),
                    format!("{e}"),
                )
                .with_repair(
                    "move the damaged record aside (kept under <root>/health/); a backend container left without a record then gets a new one",
                    move || set_aside_corrupt(&store, &id, &path),
                ),
            )
        }
        Err(e) => Some(Finding::new(
            "record-unreadable",
            Severity::Error,
            object,
            record_path.display(),
            e.to_string(),
        )),
    }
}

fn stale_lock_finding(
    object: &str,
    path: PathBuf,
    stale: &StaleLock,
    fix: impl FnOnce() -> Result<String> + 'static,
) -> Finding {
    Finding::new(
        "stale-lock",
        Severity::Error,
        object,
        path.display(),
        format!(
            "a stale lock: {}; every proxcage command that needs this lock would wait for it",
            describe_stale(stale)
        ),
    )
    .with_repair(
        "replace the locked file or directory by a copy, so the stale lock no longer applies (no process is killed)",
        fix,
    )
}

/// Replaces the file at `path` by a new empty one: a lock held on the old one no longer
/// applies to anyone who opens the path.
fn replace_file(path: &Path) -> Result<()> {
    let tmp = path.with_extension("lock.new");
    fs::write(&tmp, b"").map_err(|e| Error::io("cannot create", &tmp, e))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io("cannot change the mode of", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io("cannot replace", path, e))
}

fn set_aside_corrupt(store: &StateStore, id: &ContainerId, path: &Path) -> Result<String> {
    let keep_dir = store.root().join("health");
    fs::create_dir_all(&keep_dir).map_err(|e| Error::io("cannot create", &keep_dir, e))?;
    let keep = keep_dir.join(format!(
        "{id}.record.json.{}",
        time::OffsetDateTime::now_utc().unix_timestamp_nanos()
    ));
    let Some(lock) = store.lock_existing(id)? else {
        return Ok(format!("container {id} has no directory any more"));
    };
    match lock.record() {
        Err(Error::CorruptRecord { .. }) => {}
        _ => return Ok(format!("the record of container {id} is no longer damaged")),
    }
    fs::copy(path, &keep).map_err(|e| Error::io("cannot copy", path, e))?;
    lock.remove()?;
    Ok(format!(
        "moved the damaged record of container {id} to {}",
        keep.display()
    ))
}

/// Every finding about `backend`: its own checks ([`Backend::health`]), then what it
/// holds reconciled with the records of `store`: a create whose proxcage process died
/// midway (`create-interrupted`), a record whose container the backend no longer has
/// (`container-gone`), a container the backend holds without a record (`record-missing`).
/// Records and holdings are read without the containers' locks; a finding about one
/// container is reported, and repaired, only if it still holds under the container's lock.
pub fn reconcile(store: &StateStore, backend: &Arc<dyn Backend>) -> Result<Vec<Finding>> {
    let held = backend.held()?;
    let mut findings = backend.health(store, &held)?;
    let name = backend.name().to_string();
    for record in records_of(store, &name)? {
        if interrupted_create_confirmed(store, &record) {
            findings.push(create_interrupted_finding(store, backend, record)?);
        } else if record.phase() == Phase::Created
            && !held.iter().any(|h| h.id == *record.id())
            && record_settled(store, &record)
            && gone_under_lock(store, backend, &record)
        {
            findings.push(container_gone_finding(store, backend, record));
        }
    }
    for held in held {
        let Some(record) = held.record.clone() else {
            continue;
        };
        if known(store, &held.id) || !missing_under_lock(store, backend, &held.id) {
            continue;
        }
        let store = store.clone();
        findings.push(
            Finding::new(
                "record-missing",
                Severity::Error,
                format!("container {}", held.id),
                &held.location,
                format!(
                    "{}, but proxcage has no record of it (removed by hand?)",
                    held.what
                ),
            )
            .with_repair(
                format!("write a new record from the {name} backend's"),
                move || restore_record(&store, &record),
            ),
        );
    }
    Ok(findings)
}

fn create_interrupted_finding(
    store: &StateStore,
    backend: &Arc<dyn Backend>,
    record: Record,
) -> Result<Finding> {
    let id = record.id().clone();
    let left = backend.left_by(&record)?;
    let mut message = format!(
        "its create never finished: proxcage process {} died midway",
        record.creator_pid().unwrap_or(0)
    );
    if !left.items.is_empty() {
        message.push_str(&format!("; it left {}", left.items.join(", ")));
    }
    let finding = |message: String| {
        Finding::new(
            "create-interrupted",
            Severity::Error,
            format!("container {id}"),
            store.container_dir(&id).display(),
            message,
        )
    };
    if let Some(busy) = left.busy {
        return Ok(finding(format!(
            "{message}; {busy}: check again once it finished"
        )));
    }
    let (store, backend) = (store.clone(), backend.clone());
    Ok(finding(message).with_repair(
        format!(
            "clean up what the create made in backend {} and remove the record; the caller was never told the create succeeded",
            backend.name()
        ),
        move || undo_interrupted_create(&store, &record, |r| backend.recover(r)),
    ))
}

fn container_gone_finding(
    store: &StateStore,
    backend: &Arc<dyn Backend>,
    record: Record,
) -> Finding {
    let id = record.id().clone();
    let name = backend.name().to_string();
    let (store2, backend) = (store.clone(), backend.clone());
    Finding::new(
        "container-gone",
        Severity::Error,
        format!("container {id}"),
        store.container_dir(&id).display(),
        format!("recorded, but the {name} backend no longer has the container (removed behind proxcage's back, or the host rebooted)"),
    )
    .with_repair("remove the record", move || {
        let Some(lock) = store2.lock_existing(&id)? else {
            return Ok(format!("container {id} has no record any more"));
        };
        if lock.record()?.as_ref() != Some(&record) || backend.holds(&id)?.is_some() {
            return Err(changed(&id));
        }
        lock.remove()?;
        Ok(format!("removed the record of container {id}"))
    })
}

/// Under the container's lock: its record is still `record` and the backend does not
/// hold it. A check that fails counts as not confirmed (the next check sees it again).
fn gone_under_lock(store: &StateStore, backend: &Arc<dyn Backend>, record: &Record) -> bool {
    let Ok(Some(lock)) = store.lock_existing(record.id()) else {
        return false;
    };
    matches!(lock.record(), Ok(Some(current)) if current == *record)
        && matches!(backend.holds(record.id()), Ok(None))
}

/// Under the container's lock (taken as a create takes it): it has no record, and the
/// backend holds a container it can vouch for.
fn missing_under_lock(store: &StateStore, backend: &Arc<dyn Backend>, id: &ContainerId) -> bool {
    let Ok(lock) = store.lock_new(id) else {
        return false;
    };
    matches!(lock.record(), Ok(None))
        && matches!(backend.holds(id), Ok(Some(held)) if held.record.is_some())
}

fn changed(id: &ContainerId) -> Error {
    Error::Conflict {
        id: id.clone(),
        message: "it changed since the check (a command worked on it); run health again".into(),
    }
}

/// The records of `backend`, for its checks; unreadable records are the store check's.
pub fn records_of(store: &StateStore, backend: &str) -> Result<Vec<Record>> {
    Ok(store
        .records()?
        .into_iter()
        .filter_map(|r| r.ok())
        .filter(|r| r.backend() == backend)
        .collect())
}

/// Whether the store has any trace of `id`: a record, or a directory (a damaged record,
/// a create in progress).
pub fn known(store: &StateStore, id: &ContainerId) -> bool {
    store.container_dir(id).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ContainerId {
        ContainerId::new(s).unwrap()
    }

    fn kinds(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|f| f.kind()).collect()
    }

    fn repair_all(findings: Vec<Finding>) {
        for mut f in findings {
            if let Some(result) = f.run_repair() {
                result.unwrap();
            }
        }
    }

    #[test]
    fn a_clean_store_has_no_findings() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(tmp.path().join("root")).unwrap();
        let lock = store.lock_new(&id("a")).unwrap();
        lock.write(&Record::creating(id("a"), "runc", "/b"))
            .unwrap();
        drop(lock);
        assert!(check_store(&store, &["runc"]).unwrap().is_empty());
    }

    #[test]
    fn corrupt_records_temp_files_and_empty_dirs_are_found_and_repaired() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(tmp.path().join("root")).unwrap();
        let dirs = tmp.path().join("root/containers");
        fs::create_dir(dirs.join("bad")).unwrap();
        fs::write(dirs.join("bad/record.json"), b"{not json").unwrap();
        fs::create_dir(dirs.join("empty")).unwrap();
        fs::create_dir(dirs.join("tmp")).unwrap();
        fs::write(dirs.join("tmp/record.json.tmp.999999999"), b"{").unwrap();
        let lock = store.lock_new(&id("tmp")).unwrap();
        lock.write(&Record::creating(id("tmp"), "kata", "/b"))
            .unwrap();
        drop(lock);
        let findings = check_store(&store, &["runc"]).unwrap();
        let mut got = kinds(&findings);
        got.sort();
        assert_eq!(
            got,
            [
                "empty-directory",
                "record-backend-unknown",
                "record-corrupt",
                "temp-file"
            ]
        );
        repair_all(findings);
        let after = check_store(&store, &["runc"]).unwrap();
        assert_eq!(kinds(&after), ["record-backend-unknown"]);
        assert!(!dirs.join("bad").exists() && !dirs.join("empty").exists());
        let kept: Vec<_> = fs::read_dir(tmp.path().join("root/health"))
            .unwrap()
            .collect();
        assert_eq!(kept.len(), 1);
    }

    #[test]
    fn a_dead_creator_is_an_interrupted_create() {
        let mut record = Record::creating(id("a"), "runc", "/b");
        assert!(!create_interrupted(&record));
        let json = serde_json::to_value(&record).unwrap();
        let mut json = json;
        json["creator_pid"] = 999_999_999.into();
        record = serde_json::from_value(json).unwrap();
        assert!(create_interrupted(&record));
        record.mark_created();
        assert!(!create_interrupted(&record));
    }

    fn dead_creator(record: Record) -> Record {
        let mut json = serde_json::to_value(&record).unwrap();
        json["creator_pid"] = 999_999_999.into();
        serde_json::from_value(json).unwrap()
    }

    /// health reads records without the lock: a create that finished since, or one in
    /// progress, must not be taken for an interrupted one, and its repair must not undo
    /// a create that finished.
    #[test]
    fn an_interrupted_create_is_confirmed_under_the_lock_and_undone_only_while_it_holds() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(tmp.path().join("root")).unwrap();
        let lock = store.lock_new(&id("a")).unwrap();
        let record = dead_creator(Record::creating(id("a"), "runc", "/b"));
        lock.write(&record).unwrap();
        // Someone holds the lock: working on it, not interrupted.
        assert!(create_interrupted(&record));
        assert!(!interrupted_create_confirmed(&store, &record));
        drop(lock);
        assert!(interrupted_create_confirmed(&store, &record));

        // The create finished between the check and the repair: nothing is undone.
        let lock = store.lock_existing(&id("a")).unwrap().unwrap();
        let mut finished = record.clone();
        finished.mark_created();
        lock.write(&finished).unwrap();
        drop(lock);
        assert!(!interrupted_create_confirmed(&store, &record));
        let mut undone = false;
        let err = undo_interrupted_create(&store, &record, |_| {
            undone = true;
            Ok(())
        })
        .unwrap_err();
        assert!(!undone);
        assert!(err.to_string().contains("its create finished"), "{err}");
        assert_eq!(store.read(&id("a")).unwrap(), Some(finished));

        // Still interrupted at the repair: undone, and the record goes.
        let lock = store.lock_existing(&id("a")).unwrap().unwrap();
        lock.write(&record).unwrap();
        drop(lock);
        let message = undo_interrupted_create(&store, &record, |r| {
            assert_eq!(r, &record);
            undone = true;
            Ok(())
        })
        .unwrap();
        assert!(undone, "{message}");
        assert_eq!(store.read(&id("a")).unwrap(), None);
    }

    #[test]
    fn a_leftover_repair_directory_and_a_loose_root_mode_are_found_and_repaired() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let store = StateStore::open(&root).unwrap();
        fs::create_dir(root.join("containers/~replace-a-1")).unwrap();
        // Neither an id nor the store's own: not proxcage's business.
        fs::create_dir(root.join("containers/lost+found!")).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).unwrap();
        let findings = check_store(&store, &["runc"]).unwrap();
        assert_eq!(kinds(&findings), ["root-permissions", "leftover-directory"]);
        assert_eq!(findings[0].severity(), Severity::Warning);
        assert_eq!(
            findings[0].message(),
            "mode 0777 lets other users change container records"
        );
        assert_eq!(findings[1].object(), "directory ~replace-a-1");
        repair_all(findings);
        assert_eq!(
            fs::metadata(&root).unwrap().permissions().mode() & 0o7777,
            0o755
        );
        assert!(!root.join("containers/~replace-a-1").exists());
        assert!(root.join("containers/lost+found!").exists());
        assert!(check_store(&store, &["runc"]).unwrap().is_empty());
    }

    #[test]
    fn a_stale_store_lock_is_found_and_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let store = StateStore::open(&root).unwrap();
        drop(store.lock_store().unwrap());
        // flock(1) takes the lock and ends; the sleep it leaves behind inherited the fd.
        let pid_file = tmp.path().join("sleep.pid");
        let status = std::process::Command::new("flock")
            .arg(root.join("store.lock"))
            .args([
                "sh",
                "-c",
                "sleep 60 </dev/null >/dev/null 2>&1 & echo $! > \"$0\"",
            ])
            .arg(&pid_file)
            .status()
            .expect("flock is not installed: apt-get install -y util-linux");
        assert!(status.success());
        let sleep: u32 = fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let kill_sleep = || {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(sleep as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        };

        let stale = stale_lock(&root.join("store.lock"));
        let findings = check_store(&store, &["runc"]).unwrap();
        let Some(stale) = stale else {
            kill_sleep();
            panic!("the lock left with the sleep is not stale");
        };
        assert!(stale.held_by.contains(&sleep), "{stale:?}");
        assert_eq!(kinds(&findings), ["stale-lock"]);
        assert_eq!(findings[0].object(), "the store");
        assert!(
            findings[0].message().contains(&format!(
                "it was taken by process {}, which is gone, and is still held by",
                stale.taken_by
            )) && findings[0].message().contains(&format!("{sleep} (sleep)")),
            "{}",
            findings[0].message()
        );
        repair_all(findings);
        // The new store.lock is free although the sleep still holds the old one.
        let started = std::time::Instant::now();
        drop(store.lock_store().unwrap());
        assert!(started.elapsed() < std::time::Duration::from_millis(400));
        assert!(check_store(&store, &["runc"]).unwrap().is_empty());
        kill_sleep();
    }

    #[test]
    fn a_lock_held_by_its_live_taker_is_not_stale() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(tmp.path().join("root")).unwrap();
        let lock = store.lock_new(&id("a")).unwrap();
        assert_eq!(stale_lock(lock.path()), None);
        assert!(locked(lock.path()));
        drop(lock);
        assert_eq!(stale_lock(&tmp.path().join("root/store.lock")), None);
    }

    #[test]
    fn record_repairs_refuse_when_the_record_changed_since_the_check() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(tmp.path().join("root")).unwrap();
        let checked = Record::restored(id("a"), "runc", "/b", "2026-01-01T00:00:00Z");
        assert_eq!(
            restore_record(&store, &checked).unwrap(),
            "wrote a new record for container a (backend runc)"
        );
        // A second restore finds the record the first wrote.
        let err = restore_record(&store, &checked).unwrap_err();
        assert_eq!(err.kind(), proxcage_core::ErrorKind::AlreadyExists, "{err}");

        let mut changed = checked.clone();
        changed.set_backend_data(serde_json::json!({"vmid": 105}));
        let lock = store.lock_existing(&id("a")).unwrap().unwrap();
        lock.write(&changed).unwrap();
        drop(lock);
        let err = forget_record(&store, &id("a"), &checked).unwrap_err();
        assert_eq!(
            err.to_string(),
            "container a: its record changed since the check; run health again"
        );
        assert!(store.read(&id("a")).unwrap().is_some());

        assert_eq!(
            forget_record(&store, &id("a"), &changed).unwrap(),
            "removed the record of container a"
        );
        assert_eq!(
            forget_record(&store, &id("a"), &changed).unwrap(),
            "container a has no record any more"
        );
    }
}
