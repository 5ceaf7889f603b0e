//! The system calls of the new mount API and openat2, which nix does not wrap.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub(crate) const OPEN_TREE_CLONE: u32 = 1;
pub(crate) const AT_RECURSIVE: u32 = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
pub(crate) const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub(crate) const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub(crate) const MOUNT_ATTR_NODEV: u64 = 0x4;
pub(crate) const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub(crate) const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)
}

fn fd_or_error(ret: libc::c_long) -> io::Result<OwnedFd> {
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this new fd to us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

fn ok_or_error(ret: libc::c_long) -> io::Result<()> {
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A detached copy of the mount at `path` (`flags`: [`OPEN_TREE_CLONE`], maybe with
/// [`AT_RECURSIVE`]), close-on-exec.
pub(crate) fn open_tree(path: &Path, flags: u32) -> io::Result<OwnedFd> {
    let c = cstring(path)?;
    // SAFETY: a NUL-terminated path and plain flags; the result is a new fd or -1.
    fd_or_error(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            flags | libc::O_CLOEXEC as u32,
        )
    })
}

/// Sets `attr_set` (and an idmapping to `userns` with [`MOUNT_ATTR_IDMAP`]) on the
/// detached tree `tree`, on every mount of it with `recursive`.
pub(crate) fn set_attr(
    tree: BorrowedFd<'_>,
    attr_set: u64,
    userns: Option<BorrowedFd<'_>>,
    recursive: bool,
) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.map_or(0, |fd| fd.as_raw_fd() as u64),
    };
    let flags = libc::AT_EMPTY_PATH | if recursive { AT_RECURSIVE as i32 } else { 0 };
    // SAFETY: an fd, an empty path with AT_EMPTY_PATH, and a mount_attr of its size.
    ok_or_error(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
}

/// Attaches the tree `from` onto the current directory.
pub(crate) fn move_onto_cwd(from: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fds and NUL-terminated paths; the kernel reads nothing else.
    ok_or_error(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c".".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
}

/// Attaches the tree `from` onto the file or directory `to` (an `O_PATH` fd).
pub(crate) fn move_onto(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fds and empty NUL-terminated paths with the EMPTY_PATH flags.
    ok_or_error(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            to.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })
}

/// Opens `path` below `root` as if `root` were `/` (symlinks and `..` cannot leave it).
pub(crate) fn open_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: i32,
    mode: u32,
) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: u64::from(mode),
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    let c = cstring(path)?;
    // SAFETY: an fd, a NUL-terminated path and an open_how of its size.
    fd_or_error(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    })
}

/// `pivot_root(".", ".")`, then the old root detached: the current directory becomes `/`.
pub(crate) fn pivot_to_cwd() -> io::Result<()> {
    // SAFETY: two NUL-terminated paths.
    ok_or_error(unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) })?;
    nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH)?;
    nix::unistd::chdir("/")?;
    Ok(())
}

/// Execs the executable `exe` (an fd) with `argv` and an empty environment.
pub(crate) fn exec_fd(exe: BorrowedFd<'_>, argv: &[CString]) -> io::Error {
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    // SAFETY: NUL-terminated argv and envp arrays of NUL-terminated strings that live
    // until the call, which returns only on failure.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            exe.as_raw_fd(),
            c"".as_ptr(),
            ptrs.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    io::Error::last_os_error()
}

/// `setns(fd, 0)`.
pub(crate) fn setns(fd: BorrowedFd<'_>, what: &str) -> io::Result<()> {
    // SAFETY: an fd of a namespace file.
    if unsafe { libc::setns(fd.as_raw_fd(), 0) } < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("setns({what}): {e}")));
    }
    Ok(())
}

/// The pids of `pid`'s children (host pids, from the host's /proc).
pub(crate) fn children(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}
