//! Read-write bind mounts into an unprivileged CT. Proxmox mounts an `mpN` as host root,
//! without an idmapping: the CT's root (host uid 100000) then cannot write where the host's
//! root can, as it can under runc. Where the kernel and the source's filesystem allow it,
//! such a mount becomes an idmapped bind instead (a raw `lxc.mount.entry` with LXC's
//! `idmap=container`, whose source LXC opens as the CT's root); where they do not, it stays
//! an `mpN` and `create` says which mount the container cannot write.

use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use proxcage_core::ContainerId;

use crate::member::sys;
use proxcage_lxc_config::ProxmoxConfig;

/// Turns each read-write `mpN` bind of a host directory into an idmapped `lxc.mount.entry`
/// where it can be one; warns about each the CT's root still cannot write to.
pub(crate) fn idmap_rw_binds(
    id: &ContainerId,
    proxmox: &mut ProxmoxConfig,
    owner: (u32, u32),
) -> proxcage_core::Result<()> {
    if owner == (0, 0) {
        return Ok(());
    }
    let binds: Vec<(String, String, String)> = proxmox
        .options
        .iter()
        .filter(|(key, _)| key.starts_with("mp"))
        .filter_map(|(key, value)| {
            let (source, rest) = value.split_once(",mp=")?;
            let target = rest.split(',').next()?;
            let ro = rest.split(',').any(|o| o == "ro=1");
            (!ro).then(|| (key.clone(), source.to_string(), target.to_string()))
        })
        .collect();
    for (key, source, target) in binds {
        match probe(Path::new(&source), owner) {
            Ok(()) => {
                proxmox.options.remove(&key);
                let entry = format!(
                    "{source} {} none rbind,create=dir,idmap=container 0 0",
                    target.trim_start_matches('/')
                );
                proxmox
                    .raw
                    .push("lxc.mount.entry", entry)
                    .map_err(|e| proxcage_core::Error::Input(Box::new(e)))?;
            }
            Err(why) if !writable_by(Path::new(&source), owner) => tracing::warn!(
                "container {id}: the container's root (host uid {}) cannot write to the \
                 read-write mount {target} ({source}): {why}",
                owner.0
            ),
            Err(_) => {}
        }
    }
    Ok(())
}

/// Whether the host directory `path` lets host uid/gid `owner` write to it.
fn writable_by(path: &Path, (uid, gid): (u32, u32)) -> bool {
    let Ok(meta) = fs::metadata(path) else {
        return false;
    };
    let mode = meta.mode();
    if meta.uid() == uid {
        mode & 0o300 == 0o300
    } else if meta.gid() == gid {
        mode & 0o030 == 0o030
    } else {
        mode & 0o003 == 0o003
    }
}

/// Whether `source` can be an idmapped bind into the CT: LXC opens it as the CT's root,
/// so every directory above it must let that uid through; then the kernel and the
/// filesystem must take an idmapping, which is tried on a detached copy of the mount.
fn probe(source: &Path, (uid, gid): (u32, u32)) -> Result<(), String> {
    for dir in source.ancestors().skip(1) {
        let meta = fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mode = meta.mode();
        let search = if meta.uid() == uid {
            mode & 0o100
        } else if meta.gid() == gid {
            mode & 0o010
        } else {
            mode & 0o001
        };
        if search == 0 {
            return Err(format!(
                "{} does not let the CT's root through, so LXC cannot open the source",
                dir.display()
            ));
        }
    }
    let userns = mapped_userns(uid, gid).map_err(|e| format!("no user namespace: {e}"))?;
    let tree =
        sys::open_tree(source, sys::OPEN_TREE_CLONE).map_err(|e| format!("open_tree: {e}"))?;
    sys::set_attr(
        tree.as_fd(),
        sys::MOUNT_ATTR_IDMAP,
        Some(userns.as_fd()),
        false,
    )
    .map_err(|e| format!("the kernel or the filesystem takes no idmapped mount: {e}"))
}

/// A user namespace mapping 0..65536 to `uid`/`gid` onwards, as Proxmox maps a CT's: made
/// by a child that unshares one and waits until its namespace is open here.
fn mapped_userns(uid: u32, gid: u32) -> io::Result<OwnedFd> {
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (done_r, done_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: the child makes only async-signal-safe system calls (close, unshare, write,
    // read, _exit). It closes its copy of `done_w` so that the parent's drop ends its read.
    let child = match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => unsafe {
            libc::close(done_w.as_raw_fd());
            let ok: u8 = (libc::unshare(libc::CLONE_NEWUSER) == 0) as u8;
            libc::write(ready_w.as_raw_fd(), &ok as *const u8 as *const _, 1);
            let mut byte = 0u8;
            libc::read(done_r.as_raw_fd(), &mut byte as *mut u8 as *mut _, 1);
            libc::_exit(0)
        },
        nix::unistd::ForkResult::Parent { child } => child,
    };
    drop(ready_w);
    drop(done_r);
    let opened = (|| {
        let mut ok = [0u8; 1];
        nix::unistd::read(&ready_r, &mut ok)?;
        if ok[0] != 1 {
            return Err(io::Error::other("unshare(CLONE_NEWUSER) failed"));
        }
        let proc = format!("/proc/{child}");
        fs::write(format!("{proc}/uid_map"), format!("0 {uid} 65536"))?;
        fs::write(format!("{proc}/gid_map"), format!("0 {gid} 65536"))?;
        Ok(OwnedFd::from(fs::File::open(format!("{proc}/ns/user"))?))
    })();
    drop(done_w);
    let _ = nix::sys::wait::waitpid(child, None);
    opened
}
