//! Hostile images and tarballs: files that would make `create_bundle` block, read without
//! end or fill the disk. Each is refused with the message docs/bad-input.md lists, and
//! leaves nothing behind. Where the fault was a hang, the call runs on a thread that the
//! test gives up on after [`HANG`]: a hang fails the test instead of stalling the run.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use proxcage_oci::build::{create_bundle, BuildError, BuiltBundle, BundleOptions, Source};
use proxcage_oci::Digest;
use serde_json::{json, Value};

/// How long a call may take before the test calls it hung; far above what any of them
/// takes when it does not hang.
const HANG: Duration = Duration::from_secs(60);

const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Runs `f` on a thread and returns what it returns, or fails the test when it has not
/// returned within [`HANG`].
fn without_hanging<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(HANG)
        .unwrap_or_else(|_| panic!("{what} did not return within {HANG:?}: it hangs"))
}

/// Writes `bytes` as a blob of `layout`; its digest.
fn put_blob(layout: &Path, bytes: &[u8]) -> Digest {
    let digest = Digest::of(bytes);
    fs::write(layout.join("blobs/sha256").join(digest.hex()), bytes).unwrap();
    digest
}

/// An image layout at `<dir>/layout`, tag `t`, whose manifest lists `layers` (digest,
/// declared size, media type) and whose image config has `config`. The layer blobs are
/// the caller's to write.
fn layout(dir: &Path, layers: &[(Digest, u64, &str)], config: Value) -> PathBuf {
    let layout = dir.join("layout");
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": config,
    }))
    .unwrap();
    let config_digest = put_blob(&layout, &config);
    let layers: Vec<Value> = layers
        .iter()
        .map(|(d, size, mt)| json!({"mediaType": mt, "digest": d.to_string(), "size": size}))
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest.to_string(), "size": config.len()},
        "layers": layers,
    }))
    .unwrap();
    let manifest_digest = put_blob(&layout, &manifest);
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest.to_string(), "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": "t"},
    }]});
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    layout
}

/// An image layout at `<dir>/layout` with the one layer `bytes`.
fn image_with_layer(dir: &Path, bytes: &[u8], media_type: &str, config: Value) -> PathBuf {
    fs::create_dir_all(dir.join("layout/blobs/sha256")).unwrap();
    let digest = put_blob(&dir.join("layout"), bytes);
    layout(dir, &[(digest, bytes.len() as u64, media_type)], config)
}

/// A tar stream of `entries`: (name, header type, data).
fn tar(entries: Vec<(&str, tar::EntryType, Box<dyn Read>, u64)>) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind, data, size) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_size(size);
        builder.append_data(&mut header, name, data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn opts() -> BundleOptions {
    BundleOptions::default().progress(false)
}

/// Builds `<dir>/bundle` from `source` on a thread that must not hang.
fn build(dir: &Path, source: Source, opts: BundleOptions) -> Result<BuiltBundle, BuildError> {
    let out = dir.join("bundle");
    without_hanging("create_bundle", move || create_bundle(&out, &source, &opts))
}

fn image(layout: &Path) -> Source {
    Source::parse(&format!("{}:t", layout.display())).unwrap()
}

/// Nothing of the bundle is left in `dir`: no bundle, no temporary directory.
fn assert_nothing_left(dir: &Path) {
    let left: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n == "bundle" || n.starts_with(".proxcage-bundle-"))
        .collect();
    assert!(
        left.is_empty(),
        "left behind in {}: {left:?}",
        dir.display()
    );
}

#[test]
fn an_index_json_that_is_a_fifo_is_refused_without_blocking() {
    let work = tempfile::tempdir().unwrap();
    let layout = layout(work.path(), &[], json!({}));
    let index = layout.join("index.json");
    fs::remove_file(&index).unwrap();
    nix::unistd::mkfifo(&index, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let err = build(work.path(), image(&layout), opts()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{} is a FIFO, not a regular file", index.display())
    );
    assert_nothing_left(work.path());
}

#[test]
fn an_index_json_linked_to_dev_zero_is_refused_unread() {
    let work = tempfile::tempdir().unwrap();
    let layout = layout(work.path(), &[], json!({}));
    let index = layout.join("index.json");
    fs::remove_file(&index).unwrap();
    symlink("/dev/zero", &index).unwrap();
    let err = build(work.path(), image(&layout), opts()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} is a character device, not a regular file",
            index.display()
        )
    );
    assert_nothing_left(work.path());
}

#[test]
fn an_index_json_over_the_limit_is_refused_unread() {
    let work = tempfile::tempdir().unwrap();
    let layout = layout(work.path(), &[], json!({}));
    let index = layout.join("index.json");
    // Sparse: nothing of it is written, and nothing must be read.
    fs::File::create(&index).unwrap().set_len(17 << 20).unwrap();
    let err = build(work.path(), image(&layout), opts()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} is 17825792 bytes, more than the 16777216 bytes proxcage reads from it",
            index.display()
        )
    );
}

#[test]
fn a_layer_blob_linked_to_dev_zero_is_refused_whatever_size_it_declares() {
    let work = tempfile::tempdir().unwrap();
    // A made-up digest: the blob is a link to /dev/zero.
    let digest = Digest::of(b"not the content");
    for (case, declared) in [("huge", 1u64 << 40), ("small", 1 << 20)] {
        let dir = work.path().join(case);
        fs::create_dir_all(dir.join("layout/blobs/sha256")).unwrap();
        let blob = dir.join("layout/blobs/sha256").join(digest.hex());
        symlink("/dev/zero", &blob).unwrap();
        let layout = layout(&dir, &[(digest, declared, TAR)], json!({}));
        let err = build(&dir, image(&layout), opts()).unwrap_err();
        let expected = if case == "small" {
            format!(
                "{} is a character device, not a regular file",
                blob.display()
            )
        } else {
            // Refused on its declaration, before the blob is looked at.
            format!(
                "blob {digest} ({}) declares 1099511627776 bytes, more than the 68719476736 bytes proxcage reads of one blob: refused before reading it",
                blob.display()
            )
        };
        assert_eq!(err.to_string(), expected, "{case}");
        assert_nothing_left(&dir);
    }
}

#[test]
fn a_blob_whose_length_is_not_the_declared_size_is_refused_unread() {
    let work = tempfile::tempdir().unwrap();
    fs::create_dir_all(work.path().join("layout/blobs/sha256")).unwrap();
    let digest = Digest::of(b"not the content");
    let blob = work.path().join("layout/blobs/sha256").join(digest.hex());
    // A sparse terabyte: reading it would take many minutes.
    fs::File::create(&blob).unwrap().set_len(1 << 40).unwrap();
    let layout = layout(work.path(), &[(digest, 10240, TAR)], json!({}));
    let err = build(work.path(), image(&layout), opts()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "blob {digest} ({}) is corrupt or truncated: it is 1099511627776 bytes, the manifest says 10240",
            blob.display()
        )
    );

    // Declared as what it is, and over a lower limit: refused too.
    let layout = self::layout(work.path(), &[(digest, 1 << 40, TAR)], json!({}));
    let err = build(work.path(), image(&layout), opts().max_blob_size(1 << 30)).unwrap_err();
    assert!(
        matches!(err, BuildError::BlobTooLarge { size, limit, .. } if size == 1 << 40 && limit == 1 << 30),
        "{err}"
    );
    assert_nothing_left(work.path());
}

/// A gzip layer of one file `name` of `size` zero bytes: a few KB for many MB.
fn zeros_layer(name: &str, size: u64) -> Vec<u8> {
    gzip(&tar(vec![(
        name,
        tar::EntryType::Regular,
        Box::new(io::repeat(0).take(size)),
        size,
    )]))
}

#[test]
fn small_layers_that_expand_past_the_unpacked_limit_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let size = 12u64 << 20;
    let (a, b) = (zeros_layer("a", size), zeros_layer("b", size));
    assert!(a.len() < 64 << 10, "{}", a.len());
    let layout_dir = work.path().join("layout");
    fs::create_dir_all(layout_dir.join("blobs/sha256")).unwrap();
    let layers = [
        (put_blob(&layout_dir, &a), a.len() as u64, GZIP),
        (put_blob(&layout_dir, &b), b.len() as u64, GZIP),
    ];
    let layout = layout(work.path(), &layers, json!({}));
    // Each layer fits in 16 MiB; both do not.
    let err = build(
        work.path(),
        image(&layout),
        opts().max_unpacked_size(16 << 20),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("layer {}: entry \"b\" would take the unpacked file data past 16777216 bytes: refused (the image is larger than the unpacked-size limit, or a compressed layer expands without end)", layers[1].0)
    );
    assert_nothing_left(work.path());

    // At the limit, it unpacks.
    let built = build(
        work.path(),
        image(&layout),
        opts().max_unpacked_size(2 * size),
    )
    .unwrap();
    assert_eq!(fs::metadata(built.rootfs().join("b")).unwrap().len(), size);

    // A rootfs tarball is held to the same limit.
    let tarball = work.path().join("rootfs.tar.gz");
    fs::write(&tarball, &a).unwrap();
    let dir = work.path().join("tarball");
    fs::create_dir(&dir).unwrap();
    let err = build(
        &dir,
        Source::RootfsTarball { path: tarball },
        opts().max_unpacked_size(1 << 20),
    )
    .unwrap_err();
    assert!(
        matches!(&err, BuildError::UnpackedTooLarge { entry, limit, .. } if entry == "a" && *limit == 1 << 20),
        "{err}"
    );
    assert_nothing_left(&dir);
}

/// Runs `f` with a directory on a tmpfs of `size` bytes, mounted in a mount namespace of
/// its own thread: the mount goes when the thread does, whatever happens in `f`.
fn on_a_small_file_system<T: Send>(size: u64, f: impl FnOnce(&Path) -> T + Send) -> T {
    use nix::mount::{mount, MsFlags};
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test mounts a small tmpfs to fill it: run it as root"
    );
    // Made here, in the namespace that outlives the mount, so that it is removed.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
                let none = None::<&str>;
                mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none).unwrap();
                let options = format!("size={size},mode=0700");
                mount(
                    Some("tmpfs"),
                    path,
                    Some("tmpfs"),
                    MsFlags::empty(),
                    Some(options.as_str()),
                )
                .unwrap();
                f(path)
            })
            .join()
            .unwrap()
    })
}

#[test]
fn a_full_disk_is_reported_as_a_full_disk_not_as_a_corrupt_blob() {
    let work = tempfile::tempdir().unwrap();
    let layer = zeros_layer("big", 8 << 20);
    let layout = image_with_layer(work.path(), &layer, GZIP, json!({}));
    let digest = Digest::of(&layer);
    let (message, left) = on_a_small_file_system(2 << 20, |small| {
        let err = create_bundle(&small.join("bundle"), &image(&layout), &opts()).unwrap_err();
        let left = fs::read_dir(small).unwrap().count();
        (
            err.to_string()
                .replace(&small.display().to_string(), "SMALL"),
            left,
        )
    });
    assert_eq!(
        message,
        format!("no space left on device while writing \"big\" of layer {digest}: free space on the file system of SMALL or build the bundle elsewhere")
    );
    assert_eq!(left, 0, "the failed build left files behind");
}

#[test]
fn a_fifo_as_etc_passwd_does_not_block_the_user_lookup() {
    let work = tempfile::tempdir().unwrap();
    let layer = tar(vec![
        ("etc/", tar::EntryType::Directory, Box::new(io::empty()), 0),
        ("etc/passwd", tar::EntryType::Fifo, Box::new(io::empty()), 0),
    ]);
    let layout = image_with_layer(work.path(), &layer, TAR, json!({"User": "app"}));
    let err = build(work.path(), image(&layout), opts()).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, BuildError::User { .. }) && text.contains("no such user in"),
        "{text}"
    );
    assert_nothing_left(work.path());
}

#[test]
fn a_source_that_is_a_fifo_is_refused_without_blocking() {
    let work = tempfile::tempdir().unwrap();
    let fifo = work.path().join("rootfs.tar");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let arg = fifo.display().to_string();
    let source = without_hanging("Source::parse", move || Source::parse(&arg)).unwrap();
    let err = build(work.path(), source, opts()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{} is a FIFO, not a regular file", fifo.display())
    );
    assert_nothing_left(work.path());
}
