//! Bind-mount sources the CT's root cannot reach. A raw `lxc.mount.entry` is mounted by
//! LXC inside the CT's user namespace, as uid 100000, which cannot traverse the 0700
//! directories where podman and containerd keep what they bind into a container
//! (`/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`, `/dev/shm`, `.containerenv`).
//! Such a source is staged: bound, as host root, onto `<files_dir>/<id>/staged/<n>`
//! (which the CT's root can reach), and the entry mounts that instead. The bind follows
//! the source, so a client's later change to the file is seen in the container.
//!
//! The staged mounts are in the caller's mount namespace, which is the one `pct start`
//! runs LXC from when the caller is a client in the host's (podman, containerd).

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use proxcage_lxc_config::{Entry, LxcConfig};

/// One source to stage, and where.
#[derive(Clone, Debug)]
pub(crate) struct Stage {
    source: PathBuf,
    staged: PathBuf,
}

fn staging_dir(files_dir: &Path) -> PathBuf {
    files_dir.join("staged")
}

/// Whether uid `uid` can traverse every directory above `path`.
fn reachable(path: &Path, uid: u32) -> bool {
    path.ancestors().skip(1).all(|dir| {
        fs::metadata(dir)
            .is_ok_and(|m| m.mode() & 0o001 != 0 || (m.uid() == uid && m.mode() & 0o100 != 0))
    })
}

/// Rewrites the bind entries of `raw` whose host source `owner`'s uid cannot reach to
/// staged paths under `files_dir`, and returns what to stage. Sources under
/// `rootfs_mount` (where LXC mounts the CT's own rootfs) are the CT's, not the host's.
pub(crate) fn plan(
    raw: &mut LxcConfig,
    files_dir: &Path,
    owner: (u32, u32),
    rootfs_mount: &str,
) -> Vec<Stage> {
    let mut stages = Vec::new();
    let entries: Vec<Entry> = raw
        .entries()
        .iter()
        .map(|e| {
            let Some(rewritten) = staged_entry(e, files_dir, owner.0, rootfs_mount, stages.len())
            else {
                return e.clone();
            };
            stages.push(rewritten.1);
            rewritten.0
        })
        .collect();
    *raw = entries.into_iter().collect();
    stages
}

fn staged_entry(
    e: &Entry,
    files_dir: &Path,
    uid: u32,
    rootfs_mount: &str,
    n: usize,
) -> Option<(Entry, Stage)> {
    if e.key() != "lxc.mount.entry" {
        return None;
    }
    let (source, rest) = e.value().split_once(' ')?;
    let options = rest.split(' ').nth(2).unwrap_or("");
    let bind = options.split(',').any(|o| o == "bind" || o == "rbind");
    if !bind
        || !source.starts_with('/')
        || source.contains('\\')
        || Path::new(source).starts_with(rootfs_mount)
    {
        return None;
    }
    let source = PathBuf::from(source);
    if !source.exists() || reachable(&source, uid) {
        return None;
    }
    let staged = staging_dir(files_dir).join(n.to_string());
    let value = format!("{} {rest}", staged.display());
    let entry = Entry::new(e.key(), value).ok()?;
    Some((entry, Stage { source, staged }))
}

/// Binds every source onto its staged path; on a failure, what was bound is undone.
pub(crate) fn mount_all(stages: &[Stage], files_dir: &Path) -> io::Result<()> {
    if stages.is_empty() {
        return Ok(());
    }
    fs::create_dir_all(staging_dir(files_dir))?;
    for stage in stages {
        if let Err(e) = bind(stage) {
            unmount_all(files_dir);
            return Err(io::Error::new(
                e.kind(),
                format!(
                    "staging {} at {}: {e}",
                    stage.source.display(),
                    stage.staged.display()
                ),
            ));
        }
    }
    Ok(())
}

fn bind(stage: &Stage) -> io::Result<()> {
    if fs::metadata(&stage.source)?.is_dir() {
        fs::create_dir_all(&stage.staged)?;
    } else {
        fs::File::create(&stage.staged)?;
    }
    mount(
        Some(&stage.source),
        &stage.staged,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )?;
    Ok(())
}

/// Unmounts whatever is staged under `files_dir`: before the files directory is removed,
/// so that the removal never reaches into a client's directory through a bind.
pub(crate) fn unmount_all(files_dir: &Path) {
    let Ok(entries) = fs::read_dir(staging_dir(files_dir)) else {
        return;
    };
    for entry in entries.flatten() {
        let _ = umount2(&entry.path(), MntFlags::MNT_DETACH);
    }
}

/// Removes a container's files directory, staged mounts first.
pub(crate) fn remove_files_dir(files_dir: &Path) -> io::Result<()> {
    unmount_all(files_dir);
    fs::remove_dir_all(files_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_binds_from_unreachable_directories_are_staged() {
        let dir = tempfile::tempdir().unwrap();
        let hidden = dir.path().join("hidden");
        fs::create_dir(&hidden).unwrap();
        fs::set_permissions(&hidden, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        fs::write(hidden.join("hosts"), "x").unwrap();
        let mut raw = LxcConfig::parse(&format!(
            "lxc.mount.entry = {h}/hosts etc/hosts none bind,rprivate,create=file 0 0\n\
             lxc.mount.entry = /dev/null proc/kcore none bind,optional 0 0\n\
             lxc.mount.entry = tmpfs tmp tmpfs size=1m,create=dir 0 0\n",
            h = hidden.display()
        ))
        .unwrap();
        let stages = plan(
            &mut raw,
            Path::new("/files/c1"),
            (100_000, 100_000),
            "/usr/lib/x86_64-linux-gnu/lxc/rootfs",
        );
        assert_eq!(stages.len(), 1);
        assert_eq!(stages[0].source, hidden.join("hosts"));
        assert_eq!(
            raw.render(),
            "lxc.mount.entry = /files/c1/staged/0 etc/hosts none bind,rprivate,create=file 0 0\n\
             lxc.mount.entry = /dev/null proc/kcore none bind,optional 0 0\n\
             lxc.mount.entry = tmpfs tmp tmpfs size=1m,create=dir 0 0\n"
        );
    }
}
