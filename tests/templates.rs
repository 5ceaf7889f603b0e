//! Templates from root filesystems: what `proxcage_oci::template::pack_rootfs` writes
//! unpacks with GNU tar, as `pct create` does, to the same tree; the same tree gives the
//! same bytes and is packed once; a pack that fails leaves nothing in the template
//! directory.

mod support;
#[path = "support/tree.rs"]
mod tree;

use std::fs;
use std::path::Path;
use std::process::Command;

use proxcage::oci::template::{pack_rootfs, tree_digest, PackOptions, TemplateError};
use tree::{assert_same, populate_rich_tree, snapshot, Ignore};

fn opts() -> PackOptions {
    PackOptions::default().progress(false)
}

/// Unpacks `archive` into `dest` the way Proxmox does, minus its excludes.
fn gnu_untar(archive: &Path, dest: &Path) {
    let tar = support::require_tool("tar", "tar");
    support::require_tool("zstd", "zstd");
    fs::create_dir_all(dest).unwrap();
    let out = Command::new(tar)
        .args([
            "--zstd",
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "-xpf",
        ])
        .arg(archive)
        .arg("-C")
        .arg(dest)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "tar -x {} failed or warned: {}",
        archive.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn template_unpacks_with_gnu_tar_to_the_same_tree() {
    support::require_root();
    let work = tempfile::tempdir().unwrap();
    let rootfs = work.path().join("rootfs");
    fs::create_dir(&rootfs).unwrap();
    populate_rich_tree(&rootfs);
    // A socket is not archived (GNU tar leaves sockets out too).
    let _sock = std::os::unix::net::UnixListener::bind(rootfs.join("tmp/app.sock")).unwrap();
    let dest = work.path().join("cache");
    fs::create_dir(&dest).unwrap();

    let template = pack_rootfs(&rootfs, &dest, &opts()).unwrap();
    assert!(!template.reused());
    let mode = fs::metadata(template.path()).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o644
    );

    let unpacked = work.path().join("unpacked");
    gnu_untar(template.path(), &unpacked);
    let mut want = snapshot(&rootfs, Ignore::default());
    want.entries.remove(b"./tmp/app.sock".as_slice());
    // tmp's mtime moved when the socket was bound.
    want.entries.get_mut(b"./tmp".as_slice()).unwrap().mtime = None;
    let mut got = snapshot(&unpacked, Ignore::default());
    got.entries.get_mut(b"./tmp".as_slice()).unwrap().mtime = None;
    assert_same(&want, &got, "rootfs vs GNU tar's unpacking of the template");
}

#[test]
fn same_tree_same_bytes_and_a_second_pack_reuses() {
    support::require_root();
    let work = tempfile::tempdir().unwrap();
    let rootfs = work.path().join("rootfs");
    fs::create_dir(&rootfs).unwrap();
    populate_rich_tree(&rootfs);
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    fs::create_dir(&a).unwrap();
    fs::create_dir(&b).unwrap();

    let first = pack_rootfs(&rootfs, &a, &opts()).unwrap();
    // A copy elsewhere (cp -a keeps everything the digest covers) has the same digest.
    let copy = work.path().join("copy");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&rootfs)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(st.success());
    let other = pack_rootfs(&copy, &b, &opts().workers(1).level(3)).unwrap();
    assert_eq!(other.digest(), first.digest());
    assert_eq!(
        fs::read(first.path()).unwrap(),
        fs::read(other.path()).unwrap(),
        "same tree, other bytes"
    );

    let written = fs::metadata(first.path()).unwrap().modified().unwrap();
    let again = pack_rootfs(&rootfs, &a, &opts().level(19)).unwrap();
    assert!(
        again.reused(),
        "the second pack did not reuse {}",
        first.path().display()
    );
    assert_eq!(again.path(), first.path());
    assert_eq!(
        fs::metadata(again.path()).unwrap().modified().unwrap(),
        written
    );
    assert_eq!(
        fs::read_dir(&a).unwrap().count(),
        1,
        "the reuse left files behind"
    );

    // Any change a container would notice is a new template.
    fs::set_permissions(
        rootfs.join("bin/suid"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    assert_ne!(tree_digest(&rootfs).unwrap(), first.digest());
}

/// A tmpfs of `size` mounted on `dir` for the guard's lifetime.
struct Tmpfs<'a>(&'a Path);

impl<'a> Tmpfs<'a> {
    fn mount(dir: &'a Path, size: &str) -> Self {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount tmpfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn a_failed_pack_leaves_nothing_in_the_template_directory() {
    support::require_root();
    let work = tempfile::tempdir().unwrap();
    let rootfs = work.path().join("rootfs");
    fs::create_dir(&rootfs).unwrap();
    // Incompressible: zstd cannot make it fit in the small file system below.
    let noise: Vec<u8> = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761).rotate_left(i % 31) >> 7) as u8)
        .collect();
    fs::write(rootfs.join("noise"), noise).unwrap();
    let dest = work.path().join("cache");
    fs::create_dir(&dest).unwrap();
    let _tmpfs = Tmpfs::mount(&dest, "512k");

    let err = pack_rootfs(&rootfs, &dest, &opts()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, TemplateError::Io { .. }), "{text}");
    assert!(
        text.contains(&dest.display().to_string()) && text.contains("No space left"),
        "{text}"
    );
    let left: Vec<_> = fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "a failed pack left {left:?} in {}",
        dest.display()
    );
}
