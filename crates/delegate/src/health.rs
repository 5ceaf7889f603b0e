//! `proxcage health` for a runc-CLI backend: the binary and its version, the backend's
//! root, and its containers reconciled with proxcage's records. Everything under the
//! backend's `--root` is proxcage's own: runc and crun are given that root by no one else.

use std::fs;

use proxcage_core::{ContainerId, DeleteRequest, Finding, Result, Runtime, Severity};
use proxcage_store::health::{
    self, forget_record, interrupted_create_confirmed, restore_record, undo_interrupted_create,
};
use proxcage_store::{Backend, Phase, Record, StateStore};

use crate::Delegate;

/// The oldest runc and crun proxcage is tested with.
const MIN_VERSION: (u32, u32, u32) = (1, 0, 0);

pub(crate) fn check(d: &Delegate, store: &StateStore) -> Result<Vec<Finding>> {
    let mut findings = Vec::new();
    let name = d.name.clone();
    let binary = d.binary().display().to_string();
    match d.version() {
        Ok(text) => match parse_version(&text) {
            Some(v) if v >= MIN_VERSION => {}
            Some((a, b, c)) => findings.push(Finding::new(
                "backend-version",
                Severity::Warning,
                format!("backend {name}"),
                &binary,
                format!(
                    "{name} {a}.{b}.{c} is older than {}.{}.{}, the oldest proxcage supports: upgrade the Debian package '{name}'",
                    MIN_VERSION.0, MIN_VERSION.1, MIN_VERSION.2
                ),
            )),
            None => findings.push(Finding::new(
                "backend-version",
                Severity::Warning,
                format!("backend {name}"),
                &binary,
                format!("{binary} --version printed no version proxcage can read: {:?}", text.trim()),
            )),
        },
        Err(e) => findings.push(Finding::new(
            "backend-version",
            Severity::Error,
            format!("backend {name}"),
            &binary,
            format!("{binary} --version failed: {e}"),
        )),
    }
    let root = d.root().to_path_buf();
    if root.exists() && nix::unistd::access(&root, nix::unistd::AccessFlags::W_OK).is_err() {
        findings.push(Finding::new(
            "root-not-writable",
            Severity::Error,
            format!("backend {name}"),
            root.display(),
            format!("{name}'s root is not writable by this user"),
        ));
    }

    for record in health::records_of(store, &name)? {
        let id = record.id().clone();
        let object = format!("container {id}");
        if interrupted_create_confirmed(store, &record) {
            let (d, store) = (d.clone(), store.clone());
            findings.push(
                Finding::new(
                    "create-interrupted",
                    Severity::Error,
                    object,
                    store.root().join("containers").join(id.as_str()).display(),
                    format!(
                        "its create never finished: proxcage process {} died midway{}",
                        record.creator_pid().unwrap_or(0),
                        if root.join(id.as_str()).exists() {
                            format!(", after {name} had made the container")
                        } else {
                            String::new()
                        }
                    ),
                )
                .with_repair(
                    format!("delete what {name} made of it (delete --force) and remove the record; the caller was never told the create succeeded"),
                    move || undo_interrupted_create(&store, &record, |r| d.recover(r)),
                ),
            );
        } else if record.phase() == Phase::Created
            && !root.join(id.as_str()).exists()
            && health::record_settled(store, &record)
            && !root.join(id.as_str()).exists()
        {
            let store = store.clone();
            findings.push(
                Finding::new(
                    "container-gone",
                    Severity::Error,
                    object,
                    root.join(id.as_str()).display(),
                    format!("recorded, but {name} no longer has the container (its state was removed behind proxcage's back, or the host rebooted)"),
                )
                .with_repair("remove the record", move || forget_record(&store, &id, &record)),
            );
        }
    }

    let Ok(entries) = fs::read_dir(&root) else {
        return Ok(findings);
    };
    let mut orphans: Vec<ContainerId> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| ContainerId::new(n).ok())
        })
        .filter(|id| !health::known(store, id))
        .collect();
    orphans.sort();
    for id in orphans {
        let object = format!("container {id}");
        let location = root.join(id.as_str()).display().to_string();
        match d.state(&id) {
            Ok(state) => {
                let record = Record::restored(
                    id,
                    name.clone(),
                    state.bundle.clone(),
                    state.created.clone(),
                );
                let store = store.clone();
                findings.push(
                    Finding::new(
                        "record-missing",
                        Severity::Error,
                        object,
                        location,
                        format!("{name} has this container ({}), but proxcage has no record of it (removed by hand?)", state.status),
                    )
                    .with_repair("write a new record from the backend's state", move || {
                        restore_record(&store, &record)
                    }),
                );
            }
            Err(e) => {
                let d = d.clone();
                findings.push(
                    Finding::new(
                        "container-half-created",
                        Severity::Error,
                        object,
                        location,
                        format!("a container in proxcage's {name} root without a record, whose state {name} cannot read: {e}"),
                    )
                    .with_repair(format!("{name} delete --force"), move || {
                        match d.delete(DeleteRequest { id: &id, force: true }) {
                            Ok(()) => {}
                            Err(e) if e.kind() == proxcage_core::ErrorKind::NotFound => {}
                            Err(e) => return Err(e),
                        }
                        Ok(format!("deleted container {id} from {}", d.name))
                    }),
                );
            }
        }
    }
    Ok(findings)
}

/// `runc version 1.1.5` / `crun version 1.8.1`: the first line's version.
fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let word = text
        .lines()
        .next()?
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    let mut parts = word
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
        parts.next().flatten().unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(
            parse_version("runc version 1.1.5\ncommit: x\nspec: 1.0.2-dev"),
            Some((1, 1, 5))
        );
        assert_eq!(
            parse_version("crun version 1.8.1\ncommit: y"),
            Some((1, 8, 1))
        );
        assert_eq!(parse_version("runc version 1.2.0-rc.1"), Some((1, 2, 0)));
        assert_eq!(parse_version("nothing"), None);
    }
}
