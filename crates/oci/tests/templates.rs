//! Templates from root filesystems: what `proxcage_oci::template::pack_rootfs` writes
//! unpacks with GNU tar, as `pct create` does, to the same tree; the same tree gives the
//! same bytes and is packed once; a pack that fails leaves nothing in the template
//! directory.

use proxcage_test_support as support;
use std::fs;
use std::path::Path;
use std::process::Command;

use proxcage_oci::template::{
    pack_oci_archive, pack_rootfs, tree_digest, PackOptions, TemplateError,
};
use support::tree::{assert_same, populate_rich_tree, snapshot, Ignore};

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
    let other = pack_rootfs(&copy, &b, &opts().level(3)).unwrap();
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

fn xattr_remove(path: &Path, name: &str) {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: both strings are NUL-terminated.
    let rc = unsafe { libc::lremovexattr(p.as_ptr(), n.as_ptr()) };
    assert_eq!(
        rc,
        0,
        "removexattr {name}: {}",
        std::io::Error::last_os_error()
    );
}

/// A bundle around the rich tree: runc's default spec with a process of our own.
fn rich_bundle(parent: &Path) -> proxcage_oci::Bundle {
    let dir = parent.join("bundle");
    fs::create_dir_all(dir.join("rootfs")).unwrap();
    populate_rich_tree(&dir.join("rootfs"));
    proxcage_oci::write_default_spec(&dir, false).unwrap();
    support::edit_config(&dir, |spec| {
        spec["process"]["args"] = serde_json::json!(["/bin/sh", "-c", "echo hi"]);
        spec["process"]["env"] = serde_json::json!(["PATH=/bin", "MODE=prod"]);
        spec["process"]["cwd"] = serde_json::json!("/srv");
        spec["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
        spec["annotations"] = serde_json::json!({
            "org.opencontainers.image.stopSignal": "SIGQUIT",
            "org.example.tier": "web",
        });
    });
    proxcage_oci::Bundle::load(&dir).unwrap()
}

#[test]
fn oci_archive_template_is_an_image_of_the_bundles_tree_and_process() {
    support::require_root();
    let skopeo = support::require_tool("skopeo", "skopeo");
    let tar = support::require_tool("tar", "tar");
    let work = tempfile::tempdir().unwrap();
    let bundle = rich_bundle(work.path());
    let dest = work.path().join("cache");
    fs::create_dir(&dest).unwrap();

    // An xattr value with a newline: Proxmox's importer could not read the archive.
    let err = pack_oci_archive(&bundle, &dest, &opts()).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, TemplateError::Unrepresentable { .. })
            && text.contains("bin/ping")
            && text.contains("user.lines"),
        "{text}"
    );
    assert_eq!(
        fs::read_dir(&dest).unwrap().count(),
        0,
        "the refused pack left files"
    );
    xattr_remove(&bundle.rootfs().join("bin/ping"), "user.lines");

    let t = pack_oci_archive(&bundle, &dest, &opts()).unwrap();
    assert!(!t.reused());
    assert_eq!(t.file_name(), format!("proxcage-{}.tar", t.digest().hex()));

    // Members under their exact names, as Proxmox's importer looks them up.
    let list = Command::new(&tar)
        .arg("-tf")
        .arg(t.path())
        .output()
        .unwrap();
    let names: Vec<String> = String::from_utf8(list.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("blobs/sha256/") && n.len() == 77)
            .count(),
        3,
        "{names:?}"
    );
    for n in ["oci-layout", "index.json", "blobs/", "blobs/sha256/"] {
        assert!(names.contains(&n.to_owned()), "{n} missing from {names:?}");
    }
    assert!(names.iter().all(|n| !n.starts_with("./")), "{names:?}");

    // skopeo reads it and checks every digest while copying it to a layout.
    let layout = work.path().join("layout");
    let out = Command::new(&skopeo)
        .arg("copy")
        .arg(format!("oci-archive:{}:latest", t.path().display()))
        .arg(format!("oci:{}:latest", layout.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inspect = Command::new(&skopeo)
        .arg("inspect")
        .arg("--config")
        .arg(format!("oci:{}:latest", layout.display()))
        .output()
        .unwrap();
    let config: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let c = &config["config"];
    assert_eq!(c["Cmd"], serde_json::json!(["/bin/sh", "-c", "echo hi"]));
    assert_eq!(c["Env"], serde_json::json!(["PATH=/bin", "MODE=prod"]));
    assert_eq!(c["WorkingDir"], "/srv");
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["StopSignal"], "SIGQUIT");
    assert_eq!(c["Labels"]["org.example.tier"], "web");

    // Its one layer, unpacked by GNU tar, and the archive, made a bundle by proxcage,
    // are the bundle's tree less device nodes and FIFOs. (umoci 0.4 cannot read zstd
    // layers.)
    let mut want = snapshot(
        bundle.rootfs(),
        Ignore {
            root: true,
            ..Ignore::default()
        },
    );
    want.entries
        .retain(|_, e| !matches!(e.kind, "char" | "block" | "fifo"));
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |d: &serde_json::Value| {
        layout
            .join("blobs/sha256")
            .join(d.as_str().unwrap().trim_start_matches("sha256:"))
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(blob(&index["manifests"][0]["digest"])).unwrap()).unwrap();
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let layer = blob(&manifest["layers"][0]["digest"]);
    let unpacked = work.path().join("unpacked");
    gnu_untar(&layer, &unpacked);
    assert_same(
        &want,
        &snapshot(
            &unpacked,
            Ignore {
                root: true,
                ..Ignore::default()
            },
        ),
        "bundle vs GNU tar's unpacking of the layer",
    );
    let built = proxcage_oci::build::create_bundle(
        &work.path().join("rebuilt"),
        &proxcage_oci::build::Source::parse(t.path().to_str().unwrap()).unwrap(),
        &proxcage_oci::build::BundleOptions::default().progress(false),
    )
    .unwrap();
    assert_same(
        &want,
        &snapshot(
            built.rootfs(),
            Ignore {
                root: true,
                ..Ignore::default()
            },
        ),
        "bundle vs create_bundle from the oci-archive",
    );

    // The same bundle: the same bytes, packed once; another process: another image.
    let again = pack_oci_archive(&bundle, &dest, &opts()).unwrap();
    assert!(again.reused() && again.path() == t.path());
    let other_dest = work.path().join("other");
    fs::create_dir(&other_dest).unwrap();
    let copy = pack_oci_archive(&bundle, &other_dest, &opts()).unwrap();
    assert_eq!(fs::read(copy.path()).unwrap(), fs::read(t.path()).unwrap());
    support::edit_config(bundle.dir(), |spec| {
        spec["process"]["args"] = serde_json::json!(["/bin/true"])
    });
    let changed = proxcage_oci::Bundle::load(bundle.dir()).unwrap();
    assert_ne!(
        pack_oci_archive(&changed, &dest, &opts()).unwrap().digest(),
        t.digest()
    );
}
