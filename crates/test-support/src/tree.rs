//! Snapshots of a directory tree for comparing two trees the way a user would notice a
//! difference: names, types, modes, numeric owners, sizes, contents, link targets,
//! device numbers, xattrs, mtimes and which names are hardlinks of each other.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    /// `st_mode & 0o7777`.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Regular files: the content; symlinks: the target.
    pub data: Vec<u8>,
    /// Devices: (major, minor).
    pub rdev: (u64, u64),
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Seconds; `None` when the snapshot ignores mtimes for this kind.
    pub mtime: Option<i64>,
}

/// What to leave out of a comparison.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ignore {
    /// Leave out directory mtimes.
    pub dir_mtimes: bool,
    /// Leave out all mtimes.
    pub mtimes: bool,
    /// Leave out the root directory's own metadata.
    pub root: bool,
}

/// A tree: entries by path relative to the root (the root is `.`), and the hardlink
/// groups (sets of paths sharing an inode, only those with more than one name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    pub entries: BTreeMap<Vec<u8>, Entry>,
    pub links: BTreeSet<BTreeSet<Vec<u8>>>,
}

/// Reads the tree at `root` without following symlinks.
pub fn snapshot(root: &Path, ignore: Ignore) -> Tree {
    let mut entries = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), BTreeSet<Vec<u8>>> = HashMap::new();
    walk(root, b".".to_vec(), ignore, &mut entries, &mut inodes);
    if ignore.root {
        entries.remove(b".".as_slice());
    }
    let links = inodes.into_values().filter(|s| s.len() > 1).collect();
    Tree { entries, links }
}

fn walk(
    path: &Path,
    name: Vec<u8>,
    ignore: Ignore,
    entries: &mut BTreeMap<Vec<u8>, Entry>,
    inodes: &mut HashMap<(u64, u64), BTreeSet<Vec<u8>>>,
) {
    let meta =
        fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
    let ft = meta.file_type();
    let (kind, data) = if ft.is_dir() {
        ("dir", Vec::new())
    } else if ft.is_symlink() {
        (
            "symlink",
            fs::read_link(path).unwrap().as_os_str().as_bytes().to_vec(),
        )
    } else if ft.is_file() {
        (
            "file",
            fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())),
        )
    } else if ft.is_char_device() {
        ("char", Vec::new())
    } else if ft.is_block_device() {
        ("block", Vec::new())
    } else if ft.is_fifo() {
        ("fifo", Vec::new())
    } else {
        ("socket", Vec::new())
    };
    if !ft.is_dir() {
        inodes
            .entry((meta.dev(), meta.ino()))
            .or_default()
            .insert(name.clone());
    }
    let rdev = if ft.is_char_device() || ft.is_block_device() {
        (
            u64::from(nix::sys::stat::major(meta.rdev()) as u32),
            u64::from(nix::sys::stat::minor(meta.rdev()) as u32),
        )
    } else {
        (0, 0)
    };
    let mut xattrs = BTreeMap::new();
    if let Ok(names) = xattr_list(path) {
        for n in names {
            if let Some(v) = xattr_get(path, &n) {
                xattrs.insert(n, v);
            }
        }
    }
    let mtime = if ignore.mtimes || (ignore.dir_mtimes && ft.is_dir()) {
        None
    } else {
        Some(meta.mtime())
    };
    entries.insert(
        name.clone(),
        Entry {
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            data,
            rdev,
            xattrs,
            mtime,
        },
    );
    if ft.is_dir() {
        for child in fs::read_dir(path).unwrap() {
            let child = child.unwrap();
            let mut child_name = name.clone();
            child_name.push(b'/');
            child_name.extend_from_slice(child.file_name().as_bytes());
            walk(&child.path(), child_name, ignore, entries, inodes);
        }
    }
}

fn c_path(path: &Path) -> std::ffi::CString {
    std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap()
}

fn xattr_list(path: &Path) -> Result<Vec<Vec<u8>>, ()> {
    let p = c_path(path);
    let mut buf = vec![0u8; 65536];
    // SAFETY: p is NUL-terminated; buf is valid for buf.len() bytes.
    let n = unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(());
    }
    buf.truncate(n as usize);
    Ok(buf
        .split(|&c| c == 0)
        .filter(|s| !s.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

fn xattr_get(path: &Path, name: &[u8]) -> Option<Vec<u8>> {
    let p = c_path(path);
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 65536];
    // SAFETY: p and n are NUL-terminated; buf is valid for buf.len() bytes.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return None;
    }
    buf.truncate(len as usize);
    Some(buf)
}

/// Sets an xattr on `path` itself (not a symlink's target).
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    let p = c_path(path);
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: p and n are NUL-terminated; value is valid for value.len() bytes.
    let rc = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        rc,
        0,
        "setxattr {name} on {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// Sets the mtime (and atime) of `path` itself, in whole seconds.
pub fn set_mtime(path: &Path, secs: i64) {
    let p = c_path(path);
    let t = libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: p is NUL-terminated and times holds two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            p.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(
        rc,
        0,
        "utimensat {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// Panics with a readable list of the differences between `want` and `got`.
pub fn assert_same(want: &Tree, got: &Tree, what: &str) {
    let mut diff = String::new();
    for (name, w) in &want.entries {
        match got.entries.get(name) {
            None => writeln!(diff, "missing: {}", String::from_utf8_lossy(name)).unwrap(),
            Some(g) if g != w => {
                let show = |e: &Entry| {
                    format!(
                        "{} mode {:o} owner {}:{} rdev {:?} mtime {:?} xattrs {:?} data {} bytes{}",
                        e.kind,
                        e.mode,
                        e.uid,
                        e.gid,
                        e.rdev,
                        e.mtime,
                        e.xattrs
                            .keys()
                            .map(|k| String::from_utf8_lossy(k).into_owned())
                            .collect::<Vec<_>>(),
                        e.data.len(),
                        if e.kind == "symlink" {
                            format!(" -> {}", String::from_utf8_lossy(&e.data))
                        } else {
                            String::new()
                        }
                    )
                };
                writeln!(
                    diff,
                    "differs: {}\n  want {}\n  got  {}{}",
                    String::from_utf8_lossy(name),
                    show(w),
                    show(g),
                    if w.xattrs != g.xattrs {
                        format!("\n  xattrs want {:?} got {:?}", w.xattrs, g.xattrs)
                    } else {
                        String::new()
                    }
                )
                .unwrap()
            }
            Some(_) => {}
        }
    }
    for name in got.entries.keys() {
        if !want.entries.contains_key(name) {
            writeln!(diff, "unexpected: {}", String::from_utf8_lossy(name)).unwrap();
        }
    }
    if want.links != got.links {
        writeln!(
            diff,
            "hardlink groups differ:\n  want {:?}\n  got  {:?}",
            show_links(&want.links),
            show_links(&got.links)
        )
        .unwrap();
    }
    assert!(diff.is_empty(), "{what}: the trees differ:\n{diff}");
}

fn show_links(links: &BTreeSet<BTreeSet<Vec<u8>>>) -> Vec<Vec<String>> {
    links
        .iter()
        .map(|s| {
            s.iter()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect()
        })
        .collect()
}

/// A `security.capability` value (VFS_CAP_REVISION_2, effective) granting
/// CAP_NET_BIND_SERVICE, what `setcap cap_net_bind_service=+ep` writes.
pub const CAP_NET_BIND_SERVICE: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, // magic_etc: revision 2 | effective
    0x00, 0x04, 0x00, 0x00, // permitted low: bit 10
    0x00, 0x00, 0x00, 0x00, // inheritable low
    0x00, 0x00, 0x00, 0x00, // permitted high
    0x00, 0x00, 0x00, 0x00, // inheritable high
];

/// Fills `root` (an existing directory) with one of everything a root filesystem may
/// hold: modes with setuid, setgid and sticky bits, owners in and beyond ustar's range,
/// hardlinks across directories, relative, absolute, dangling and long symlinks, device
/// nodes, a FIFO, xattrs (user, trusted, security.capability), names over 100 bytes and
/// not UTF-8, and fixed mtimes. Needs root.
pub fn populate_rich_tree(root: &Path) {
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::fs::{chown, lchown, symlink, PermissionsExt};
    let p = |rel: &str| root.join(rel);
    for d in [
        "bin",
        "etc/conf.d",
        "dev",
        "tmp",
        "srv/shared",
        "var/lib/app",
    ] {
        fs::create_dir_all(p(d)).unwrap();
    }
    fs::copy("/bin/busybox", p("bin/busybox")).unwrap();
    fs::write(p("bin/suid"), b"#!/bin/sh\nid\n").unwrap();
    fs::set_permissions(p("bin/suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::write(p("bin/sgid"), b"sgid").unwrap();
    fs::set_permissions(p("bin/sgid"), fs::Permissions::from_mode(0o2711)).unwrap();
    fs::write(p("bin/ping"), b"ping").unwrap();
    set_xattr(&p("bin/ping"), "security.capability", &CAP_NET_BIND_SERVICE);
    // pax records are length-prefixed: values may hold newlines.
    set_xattr(&p("bin/ping"), "user.lines", b"one\ntwo\n\x00\x0a");
    fs::set_permissions(p("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::set_permissions(p("srv/shared"), fs::Permissions::from_mode(0o2770)).unwrap();
    chown(p("srv/shared"), Some(0), Some(50)).unwrap();
    fs::write(p("etc/conf.d/app.conf"), b"key = value\n").unwrap();
    fs::set_permissions(p("etc/conf.d/app.conf"), fs::Permissions::from_mode(0o640)).unwrap();
    chown(p("etc/conf.d/app.conf"), Some(1000), Some(1000)).unwrap();
    fs::write(p("var/lib/app/ct-owned"), b"unprivileged container root").unwrap();
    chown(p("var/lib/app/ct-owned"), Some(100_000), Some(100_000)).unwrap();
    fs::write(p("var/lib/app/huge-id"), b"beyond ustar's 7 octal digits").unwrap();
    chown(p("var/lib/app/huge-id"), Some(3_000_000), Some(4_000_000)).unwrap();
    set_xattr(
        &p("var/lib/app/huge-id"),
        "user.comment",
        b"hello \xff\x00 world",
    );
    set_xattr(&p("var/lib/app"), "trusted.overlay.test", b"y");
    fs::write(p("var/lib/app/empty"), b"").unwrap();
    let big: Vec<u8> = (0..(1u32 << 20) + 3)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(p("var/lib/app/big.bin"), &big).unwrap();
    // Hardlinks: three names, two directories.
    fs::write(p("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
    fs::hard_link(p("etc/hosts"), p("etc/conf.d/hosts.link")).unwrap();
    fs::hard_link(p("etc/hosts"), p("var/lib/app/hosts.link")).unwrap();
    fs::hard_link(p("bin/suid"), p("bin/suid2")).unwrap();
    symlink("busybox", p("bin/sh")).unwrap();
    symlink("/bin/busybox", p("bin/ls")).unwrap();
    symlink("../nowhere", p("bin/dangling")).unwrap();
    symlink("conf.d", p("etc/conf")).unwrap();
    let long_target = format!("../{}/target", "t".repeat(120));
    symlink(&long_target, p("etc/long-link")).unwrap();
    lchown(p("etc/long-link"), Some(7), Some(8)).unwrap();
    let deep = p(&format!("var/{}/{}", "d".repeat(90), "e".repeat(200)));
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("f".repeat(250)), b"deep").unwrap();
    fs::write(
        root.join(std::ffi::OsStr::from_bytes(b"etc/latin1-\xe9t\xe9")),
        b"x",
    )
    .unwrap();
    let mknod = |rel: &str, kind: libc::mode_t, mode: libc::mode_t, major: u32, minor: u32| {
        let c = std::ffi::CString::new(p(rel).as_os_str().as_bytes()).unwrap();
        // SAFETY: c is NUL-terminated.
        let rc = unsafe { libc::mknod(c.as_ptr(), kind | mode, libc::makedev(major, minor)) };
        assert_eq!(rc, 0, "mknod {rel}: {}", std::io::Error::last_os_error());
    };
    mknod("dev/null", libc::S_IFCHR, 0o666, 1, 3);
    mknod("dev/loop-test", libc::S_IFBLK, 0o660, 7, 200);
    mknod("dev/big-minor", libc::S_IFCHR, 0o600, 240, 70000);
    mknod("dev/initctl", libc::S_IFIFO, 0o600, 0, 0);
    chown(p("dev/loop-test"), Some(0), Some(6)).unwrap();
    // mtimes last, deepest first, so creating children does not move them.
    let mut all = Vec::new();
    collect(root, &mut all);
    all.sort_by_key(|x| std::cmp::Reverse(x.components().count()));
    for (i, path) in all.iter().enumerate() {
        set_mtime(path, 1_600_000_000 + i as i64 * 3_600);
    }
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    out.push(dir.to_path_buf());
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            collect(&e.path(), out);
        } else {
            out.push(e.path());
        }
    }
}
