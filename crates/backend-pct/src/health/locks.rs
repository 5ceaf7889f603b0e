//! The pct backend's own locks (`<template_dir>/.proxcage-refs/*.lock`, see
//! `crate::templates`): one held longer than [`HELD_TOO_LONG`] (`lock-held-long`, no
//! repair: its holder still runs, and may be working), or whose taker is gone while a
//! process it left behind holds the file (`stale-lock`, whose repair removes the file so
//! that the next taker makes a new one).

use std::fs;
use std::path::Path;

use proxcage_core::{Error, Finding, Result, Severity};

use crate::backend::Pct;
use crate::locks::{held_for, HELD_TOO_LONG};
use crate::templates::REFS;

pub(super) fn findings(pct: &Pct) -> Vec<Finding> {
    let dir = pct.template_dir().join(REFS);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "lock"))
        .collect();
    paths.sort();
    paths.iter().filter_map(|path| finding(path)).collect()
}

fn finding(path: &Path) -> Option<Finding> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    if let Some(stale) = proxcage_store::stale_lock(path) {
        let path = path.to_path_buf();
        return Some(
            Finding::new(
                "stale-lock",
                Severity::Error,
                format!("lock {name}"),
                path.display(),
                format!(
                    "a stale lock of the pct backend: {}; every create or delete that needs it would wait for it",
                    proxcage_store::describe_stale(&stale)
                ),
            )
            .with_repair(
                "remove the lock file, so the stale lock no longer applies (no process is killed)",
                move || remove_if_stale(&path),
            ),
        );
    }
    let (taker, age, what) = held_for(path)?;
    (age > HELD_TOO_LONG).then(|| {
        Finding::new(
            "lock-held-long",
            Severity::Warning,
            format!("lock {name}"),
            path.display(),
            format!(
                "{what} has been held for {} min by {} (taken by process {taker}); creates and deletes that need it wait, and give up with a timeout naming it. If that process is stuck (a pack of a huge rootfs on a slow disk takes long, but progresses), stop it: proxcage never takes a live process's lock",
                age.as_secs() / 60,
                proxcage_store::describe_holder(path),
            ),
        )
    })
}

fn remove_if_stale(path: &Path) -> Result<String> {
    if proxcage_store::stale_lock(path).is_none() {
        return Ok(format!("{} is no longer stale", path.display()));
    }
    fs::remove_file(path).map_err(|e| Error::io("cannot remove", path, e))?;
    Ok(format!("removed the stale lock {}", path.display()))
}
