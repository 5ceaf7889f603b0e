//! `proxcage health` for a runc-CLI backend: the binary and its version, the backend's
//! root, what it holds (for [`proxcage_store::health::reconcile`]), and the containers
//! it holds but cannot describe.

use std::fs;

use proxcage_core::{ContainerId, DeleteRequest, Finding, Result, Runtime, Severity};
use proxcage_store::{health, held_from_state, Held, Leftovers, Record, StateStore};

use crate::Delegate;

pub(crate) fn check(d: &Delegate, store: &StateStore, held: &[Held]) -> Result<Vec<Finding>> {
    let mut findings = Vec::new();
    findings.extend(version(d));
    findings.extend(root_writable(d));
    findings.extend(half_created(d, store, held));
    Ok(findings)
}

/// The binary answers `--version` with a version proxcage supports.
fn version(d: &Delegate) -> Option<Finding> {
    let name = &d.name;
    let binary = d.binary().display().to_string();
    match d.version() {
        Ok(text) => match parse_version(&text) {
            Some(v) if v >= d.oldest.version => None,
            Some((a, b, c)) => {
                let (x, y, z) = d.oldest.version;
                let upgrade = d
                    .oldest
                    .upgrade
                    .clone()
                    .unwrap_or_else(|| format!("upgrade the Debian package '{name}'"));
                Some(Finding::new(
                    "backend-version",
                    Severity::Warning,
                    format!("backend {name}"),
                    &binary,
                    format!("{name} {a}.{b}.{c} is older than {x}.{y}.{z}, the oldest proxcage supports: {upgrade}"),
                ))
            }
            None => Some(Finding::new(
                "backend-version",
                Severity::Warning,
                format!("backend {name}"),
                &binary,
                format!(
                    "{binary} --version printed no version proxcage can read: {:?}",
                    text.trim()
                ),
            )),
        },
        Err(e) => Some(Finding::new(
            "backend-version",
            Severity::Error,
            format!("backend {name}"),
            &binary,
            format!("{binary} --version failed: {e}"),
        )),
    }
}

fn root_writable(d: &Delegate) -> Option<Finding> {
    let name = &d.name;
    let root = d.root();
    (root.exists() && nix::unistd::access(root, nix::unistd::AccessFlags::W_OK).is_err()).then(
        || {
            Finding::new(
                "root-not-writable",
                Severity::Error,
                format!("backend {name}"),
                root.display(),
                format!("{name}'s root is not writable by this user"),
            )
        },
    )
}

/// Containers in the backend's root whose state it cannot read, and of which proxcage has
/// no record: a create that died between the binary's create and the record. Read without
/// locks, the same picture is also what a delete that just finished, followed by a new
/// create of the id, looks like: it is judged, and repaired, only under the container's
/// lock (which a create holds throughout), and only if it still holds.
fn half_created(d: &Delegate, store: &StateStore, held: &[Held]) -> Vec<Finding> {
    let name = &d.name;
    let mut findings = Vec::new();
    for held in held.iter().filter(|h| h.record.is_none()) {
        if health::known(store, &held.id) || !half_created_under_lock(d, store, &held.id) {
            continue;
        }
        let (d, store, id) = (d.clone(), store.clone(), held.id.clone());
        findings.push(
            Finding::new(
                "container-half-created",
                Severity::Error,
                format!("container {id}"),
                &held.location,
                format!("a container in proxcage's {name} root without a record, whose state {name} cannot read: {}", held.what),
            )
            .with_repair(format!("{name} delete --force"), move || {
                let _lock = store.lock_new(&id)?;
                if store.read(&id)?.is_some() || !matches!(holds(&d, &id), Some(h) if h.record.is_none()) {
                    return Err(proxcage_core::Error::Conflict {
                        id: id.clone(),
                        message: "it changed since the check (a command worked on it); run health again".into(),
                    });
                }
                match d.delete(DeleteRequest { id: &id, force: true }) {
                    Ok(()) => {}
                    Err(e) if e.kind() == proxcage_core::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                Ok(format!("deleted container {id} from {}", d.name))
            }),
        );
    }
    findings
}

/// Under the container's lock (taken as a create takes it): no record, and a container in
/// the backend's root whose state the binary cannot read.
fn half_created_under_lock(d: &Delegate, store: &StateStore, id: &ContainerId) -> bool {
    let Ok(lock) = store.lock_new(id) else {
        return false;
    };
    matches!(lock.record(), Ok(None)) && matches!(holds(d, id), Some(h) if h.record.is_none())
}

/// Every container directory in the backend's root, with its state where the binary can
/// read it. Everything under the root is proxcage's own: runc and crun are given that
/// root by no one else.
pub(crate) fn held(d: &Delegate) -> Result<Vec<Held>> {
    let Ok(entries) = fs::read_dir(d.root()) else {
        return Ok(Vec::new());
    };
    let mut ids: Vec<ContainerId> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| ContainerId::new(n).ok())
        })
        .collect();
    ids.sort();
    Ok(ids.into_iter().map(|id| one(d, id)).collect())
}

/// Whether the backend's root holds `id`, and what the binary says of it.
pub(crate) fn holds(d: &Delegate, id: &ContainerId) -> Option<Held> {
    d.root()
        .join(id.as_str())
        .is_dir()
        .then(|| one(d, id.clone()))
}

fn one(d: &Delegate, id: ContainerId) -> Held {
    match d.state(&id) {
        Ok(state) => held_from_state(&d.name, id, &state),
        Err(e) => Held {
            location: d.root().join(id.as_str()).display().to_string(),
            what: e.to_string(),
            record: None,
            id,
        },
    }
}

/// What an interrupted create left in the backend: the binary's container, if it made it.
pub(crate) fn left_by(d: &Delegate, record: &Record) -> Leftovers {
    let mut left = Leftovers::default();
    if d.root().join(record.id().as_str()).exists() {
        left.items.push(format!("{}'s container", d.name));
    }
    left
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
