//! Bundles from images, rootfs directories and tarballs through
//! `proxcage_oci::build::create_bundle`: the rootfs equals what `umoci unpack` makes of
//! the same image (several layers, whiteouts, an opaque directory, hardlinks, symlinks,
//! setuid, xattrs, devices); the image config becomes the process; a tampered,
//! truncated, missing or escaping blob is a clear error that leaves nothing behind.

use proxcage_test_support as support;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use proxcage_oci::build::{create_bundle, BuildError, BundleOptions, Reference, Source};
use proxcage_oci::Digest;
use support::image::{run, COMMAND_TIMEOUT};
use support::tree::{assert_same, populate_rich_tree, snapshot, Ignore};

fn umoci(args: &[&str]) {
    let umoci = support::require_tool("umoci", "umoci");
    run(Command::new(umoci).args(args), COMMAND_TIMEOUT).ok();
}

/// The test image: an OCI layout built with umoci, tag `v3` (and `latest`, the same
/// layers with a config for the process), and the same layout as an oci-archive tar.
struct TestImage {
    dir: PathBuf,
    layout: PathBuf,
    archive: PathBuf,
}

static IMAGE: OnceLock<TestImage> = OnceLock::new();

extern "C" fn remove_image() {
    if let Some(image) = IMAGE.get() {
        let _ = fs::remove_dir_all(&image.dir);
    }
}

fn test_image() -> &'static TestImage {
    IMAGE.get_or_init(|| {
        support::require_root();
        let tmp = tempfile::Builder::new()
            .prefix("proxcage-oci-build-")
            .tempdir()
            .unwrap();
        let dir = tmp.path().to_path_buf();
        let layout = dir.join("oci");
        let l = layout.display().to_string();
        let img = |tag: &str| format!("{l}:{tag}");
        umoci(&["init", "--layout", &l]);
        umoci(&["new", "--image", &img("base")]);

        // Layer 1: everything, and what later layers delete.
        let b1 = dir.join("b1");
        umoci(&["unpack", "--image", &img("base"), b1.to_str().unwrap()]);
        let r1 = b1.join("rootfs");
        populate_rich_tree(&r1);
        for d in ["opq/sub", "del", "deldir/x/y"] {
            fs::create_dir_all(r1.join(d)).unwrap();
        }
        for f in ["opq/a", "opq/sub/b", "del/keep", "del/gone", "deldir/x/y/z"] {
            fs::write(r1.join(f), f).unwrap();
        }
        fs::write(
            r1.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        fs::write(
            r1.join("etc/group"),
            "root:x:0:\napp:x:1000:\nwheel:x:10:app\n",
        )
        .unwrap();
        umoci(&["repack", "--image", &img("v1"), b1.to_str().unwrap()]);

        // Layer 2: deletions (whiteouts), a changed file and mode, a new hardlink.
        let b2 = dir.join("b2");
        umoci(&["unpack", "--image", &img("v1"), b2.to_str().unwrap()]);
        let r2 = b2.join("rootfs");
        fs::remove_file(r2.join("del/gone")).unwrap();
        fs::remove_dir_all(r2.join("deldir")).unwrap();
        fs::write(r2.join("etc/conf.d/app.conf"), b"key = changed\n").unwrap();
        fs::set_permissions(
            r2.join("bin/sgid"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        fs::hard_link(r2.join("etc/conf.d/app.conf"), r2.join("etc/app.conf.link")).unwrap();
        fs::create_dir_all(r2.join("home/app")).unwrap();
        umoci(&["repack", "--image", &img("v2"), b2.to_str().unwrap()]);

        // Layer 3, written by GNU tar: an opaque directory and a plain whiteout.
        let s = dir.join("l3");
        fs::create_dir_all(s.join("opq")).unwrap();
        fs::create_dir_all(s.join("bin")).unwrap();
        fs::write(s.join("opq/.wh..wh..opq"), "").unwrap();
        fs::write(s.join("opq/c"), "new in layer 3").unwrap();
        fs::write(s.join("bin/.wh.dangling"), "").unwrap();
        let l3 = dir.join("l3.tar");
        let tar = support::require_tool("tar", "tar");
        run(
            Command::new(&tar)
                .arg("-C")
                .arg(&s)
                .args(["--numeric-owner", "--owner=0", "--group=0", "-cf"])
                .arg(&l3)
                .args(["opq", "bin"]),
            COMMAND_TIMEOUT,
        )
        .ok();
        umoci(&[
            "raw",
            "add-layer",
            "--image",
            &img("v2"),
            "--tag",
            "v3",
            l3.to_str().unwrap(),
        ]);
        umoci(&[
            "config",
            "--image",
            &img("v3"),
            "--tag",
            "latest",
            "--config.entrypoint",
            "/bin/sh",
            "--config.entrypoint",
            "-c",
            "--config.cmd",
            "echo $GREETING from $(pwd)",
            "--config.env",
            "GREETING=hello",
            "--config.env",
            "PATH=/bin",
            "--config.workingdir",
            "/home/app",
            "--config.user",
            "app",
            "--config.label",
            "org.example.tier=web",
            "--config.volume",
            "/var/cache/app",
            "--config.exposedports",
            "8080/tcp",
            "--config.stopsignal",
            "SIGQUIT",
        ]);
        for t in ["base", "v1", "v2"] {
            umoci(&["rm", "--image", &img(t)]);
        }
        umoci(&["gc", "--layout", &l]);
        let archive = dir.join("image-oci.tar");
        run(
            Command::new(&tar)
                .arg("-C")
                .arg(&layout)
                .arg("-cf")
                .arg(&archive)
                .arg("."),
            COMMAND_TIMEOUT,
        )
        .ok();
        // SAFETY: registering a plain `extern "C" fn` that only touches a static.
        unsafe { libc::atexit(remove_image) };
        let _ = tmp.keep();
        TestImage {
            dir,
            layout,
            archive,
        }
    })
}

fn opts() -> BundleOptions {
    BundleOptions::default().progress(false)
}

/// `umoci unpack` of `image:tag` into a fresh directory under `work`; its rootfs.
fn umoci_rootfs(image: &TestImage, tag: &str, work: &Path) -> PathBuf {
    let out = work.join(format!("umoci-{tag}"));
    umoci(&[
        "unpack",
        "--image",
        &format!("{}:{tag}", image.layout.display()),
        out.to_str().unwrap(),
    ]);
    out.join("rootfs")
}

/// No bundle and no temporary directory: nothing left behind.
fn assert_nothing_left(out: &Path) {
    assert!(!out.exists(), "{} was left behind", out.display());
    let parent = out.parent().unwrap();
    let stray: Vec<_> = fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".proxcage-bundle-"))
        .collect();
    assert!(
        stray.is_empty(),
        "temporary directories left in {}: {stray:?}",
        parent.display()
    );
}

#[test]
fn image_layout_bundle_rootfs_equals_umoci_unpack() {
    let image = test_image();
    let work = tempfile::tempdir().unwrap();
    let want = snapshot(&umoci_rootfs(image, "v3", work.path()), Ignore::default());
    // The layers did what they say: the fixture is not trivially equal.
    assert!(want.entries.contains_key(b"./opq/c".as_slice()));
    assert!(
        !want.entries.contains_key(b"./opq/a".as_slice()),
        "umoci kept what the opaque whiteout hides"
    );
    assert!(!want.entries.contains_key(b"./del/gone".as_slice()));
    assert!(!want.entries.contains_key(b"./deldir".as_slice()));
    assert!(!want.entries.contains_key(b"./bin/dangling".as_slice()));

    let out = work.path().join("bundle");
    let source = Source::parse(&format!("{}:v3", image.layout.display())).unwrap();
    let built = create_bundle(&out, &source, &opts()).unwrap();
    assert_eq!(built.rootfs(), out.join("rootfs"));
    assert_same(
        &want,
        &snapshot(built.rootfs(), Ignore::default()),
        "umoci unpack vs create_bundle (layout dir)",
    );
    proxcage_oci::Bundle::load(&out).expect("the bundle loads");

    // The same image from the oci-archive, named by manifest digest.
    let digest = built.manifest().unwrap();
    let out2 = work.path().join("from-archive");
    let source = Source::parse(&format!("{}@{digest}", image.archive.display())).unwrap();
    assert!(matches!(
        source,
        Source::Image {
            reference: Some(Reference::Digest(_)),
            ..
        }
    ));
    let built = create_bundle(&out2, &source, &opts()).unwrap();
    assert_same(
        &want,
        &snapshot(built.rootfs(), Ignore::default()),
        "umoci unpack vs create_bundle (oci-archive)",
    );
}

#[test]
fn image_config_becomes_the_process_and_options_override_it() {
    let image = test_image();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("bundle");
    let built = create_bundle(
        &out,
        &Source::parse(&format!("{}:latest", image.layout.display())).unwrap(),
        &opts(),
    )
    .unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(built.dir().join("config.json")).unwrap()).unwrap();
    let p = &config["process"];
    assert_eq!(
        p["args"],
        serde_json::json!(["/bin/sh", "-c", "echo $GREETING from $(pwd)"])
    );
    assert_eq!(p["env"], serde_json::json!(["GREETING=hello", "PATH=/bin"]));
    assert_eq!(p["cwd"], "/home/app");
    assert_eq!(
        p["user"],
        serde_json::json!({"uid": 1000, "gid": 1000, "additionalGids": [10]})
    );
    assert_eq!(p["terminal"], false);
    assert_eq!(
        config["root"],
        serde_json::json!({"path": "rootfs", "readonly": false})
    );
    let a = &config["annotations"];
    assert_eq!(a["org.example.tier"], "web");
    assert_eq!(a["org.opencontainers.image.stopSignal"], "SIGQUIT");
    assert_eq!(a["org.opencontainers.image.exposedPorts"], "8080/tcp");
    assert_eq!(a["io.proxcage.image.volumes"], "/var/cache/app");
    assert!(
        built.rootfs().join("var/cache/app").is_dir(),
        "the volume directory was not created"
    );

    let out = work.path().join("custom");
    let o = opts()
        .args(["echo", "hi"])
        .env(["GREETING=bye", "EXTRA=1"])
        .cwd("/tmp")
        .user("0:10")
        .hostname("web-1")
        .memory(proxcage_oci::build::parse_memory("256M").unwrap())
        .mount("/srv/data:/data:ro".parse().unwrap());
    let built = create_bundle(
        &out,
        &Source::parse(&format!("{}:latest", image.layout.display())).unwrap(),
        &o,
    )
    .unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(built.dir().join("config.json")).unwrap()).unwrap();
    let p = &config["process"];
    assert_eq!(
        p["args"],
        serde_json::json!(["/bin/sh", "-c", "echo", "hi"]),
        "--arg replaces Cmd, keeps Entrypoint"
    );
    assert_eq!(
        p["env"],
        serde_json::json!(["PATH=/bin", "GREETING=bye", "EXTRA=1"])
    );
    assert_eq!(p["cwd"], "/tmp");
    assert_eq!(p["user"], serde_json::json!({"uid": 0, "gid": 10}));
    assert_eq!(config["hostname"], "web-1");
    assert_eq!(
        config["linux"]["resources"]["memory"]["limit"],
        256u64 << 20
    );
    let mounts = config["mounts"].as_array().unwrap();
    assert_eq!(
        mounts.last().unwrap(),
        &serde_json::json!({"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind", "rprivate", "ro"]})
    );
    proxcage_oci::Bundle::load(&out).expect("the bundle loads");
}

/// A copy of the test image's layout that a test may break.
fn layout_copy(work: &Path) -> PathBuf {
    let copy = work.join("layout");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&test_image().layout)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(st.success());
    copy
}

/// The blob files of the layers of `tag`, from the manifest.
fn layer_blobs(layout: &Path, tag: &str) -> Vec<PathBuf> {
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap();
    let blob = |d: &serde_json::Value| {
        layout
            .join("blobs/sha256")
            .join(d.as_str().unwrap().trim_start_matches("sha256:"))
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(blob(&m["digest"])).unwrap()).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| blob(&l["digest"]))
        .collect()
}

#[test]
fn a_tampered_layer_is_an_error_naming_the_blob_and_leaves_nothing() {
    let work = tempfile::tempdir().unwrap();
    // A gzip layer with one byte changed, size unchanged: inflating or checking fails.
    let layout = layout_copy(work.path());
    let blob = layer_blobs(&layout, "v3")[1].clone();
    let mut bytes = fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    fs::write(&blob, &bytes).unwrap();
    let out = work.path().join("bundle");
    let err = create_bundle(
        &out,
        &Source::parse(&format!("{}:v3", layout.display())).unwrap(),
        &opts(),
    )
    .unwrap_err();
    let text = err.to_string();
    let name = blob.file_name().unwrap().to_str().unwrap();
    assert!(
        matches!(err, BuildError::BlobCorrupt { .. })
            && text.contains(name)
            && text.contains("corrupt"),
        "{text}"
    );
    assert_nothing_left(&out);

    // An uncompressed layer with one byte of file content changed: it unpacks fine, and
    // only the digest shows it.
    let src = work.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("file"), "original content").unwrap();
    let mut layer = gnu_tar(&src, None, &["file"]);
    let layout = image_with_layer(
        &work.path().join("plain"),
        &layer,
        "application/vnd.oci.image.layer.v1.tar",
    );
    let digest = Digest::of(&layer);
    let at = layer.windows(8).position(|w| w == b"original").unwrap();
    layer[at] = b'O';
    fs::write(layout.join("blobs/sha256").join(digest.hex()), &layer).unwrap();
    let out = work.path().join("plain/bundle");
    let err = create_bundle(
        &out,
        &Source::parse(&format!("{}:t", layout.display())).unwrap(),
        &opts(),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, BuildError::BlobCorrupt { .. })
            && text.contains(&digest.to_string())
            && text.contains("content has digest sha256:"),
        "{text}"
    );
    assert_nothing_left(&out);
}

#[test]
fn a_truncated_layer_is_an_error_naming_the_blob_and_leaves_nothing() {
    let work = tempfile::tempdir().unwrap();
    let layout = layout_copy(work.path());
    let blob = layer_blobs(&layout, "v3")[0].clone();
    let bytes = fs::read(&blob).unwrap();
    fs::write(&blob, &bytes[..bytes.len() / 2]).unwrap();
    let out = work.path().join("bundle");
    let err = create_bundle(
        &out,
        &Source::parse(&format!("{}:v3", layout.display())).unwrap(),
        &opts(),
    )
    .unwrap_err();
    let text = err.to_string();
    let name = blob.file_name().unwrap().to_str().unwrap();
    assert!(
        matches!(err, BuildError::BlobCorrupt { .. })
            && text.contains(name)
            && text.contains("truncated"),
        "{text}"
    );
    assert_nothing_left(&out);
}

#[test]
fn a_missing_manifest_is_an_error_and_leaves_nothing() {
    let work = tempfile::tempdir().unwrap();
    let layout = layout_copy(work.path());
    let out = work.path().join("bundle");
    // A tag the index does not have: the error lists the tags it has.
    let err = create_bundle(
        &out,
        &Source::parse(&format!("{}:nope", layout.display())).unwrap(),
        &opts(),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, BuildError::ManifestNotFound { .. })
            && text.contains(":nope")
            && text.contains("v3"),
        "{text}"
    );
    assert_nothing_left(&out);
    // The manifest blob deleted: the error names it.
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "v3")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    fs::remove_file(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap();
    let err = create_bundle(
        &out,
        &Source::parse(&format!("{}:v3", layout.display())).unwrap(),
        &opts(),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, BuildError::BlobMissing { .. }) && text.contains(&digest),
        "{text}"
    );
    assert_nothing_left(&out);
}

/// An image with `layers` ((bytes, media type), bottom first), tag `t`, written by hand.
fn image_with_layers(dir: &Path, layers: &[(&[u8], &str)]) -> PathBuf {
    let layout = dir.join("crafted");
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let put = |bytes: &[u8]| {
        let d = Digest::of(bytes);
        fs::write(layout.join("blobs/sha256").join(d.hex()), bytes).unwrap();
        (d.to_string(), bytes.len())
    };
    let descs: Vec<serde_json::Value> = layers
        .iter()
        .map(|(bytes, mt)| {
            let (d, s) = put(bytes);
            serde_json::json!({"mediaType": mt, "digest": d, "size": s})
        })
        .collect();
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}, "config": {"Cmd": ["/bin/sh"]}});
    let (cd, cs) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": descs});
    let (md, ms) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
        "annotations": {"org.opencontainers.image.ref.name": "t"}}]});
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    layout
}

/// An image with one layer.
fn image_with_layer(dir: &Path, layer: &[u8], media_type: &str) -> PathBuf {
    image_with_layers(dir, &[(layer, media_type)])
}

/// A tar of the files under `dir`, names rewritten by GNU tar's `--transform`.
fn gnu_tar(dir: &Path, transform: Option<&str>, members: &[&str]) -> Vec<u8> {
    let tar = support::require_tool("tar", "tar");
    let mut cmd = Command::new(tar);
    cmd.arg("-C")
        .arg(dir)
        .args(["-P", "--numeric-owner", "-cf", "-"]);
    if let Some(t) = transform {
        cmd.arg(format!("--transform={t}"));
    }
    let out = cmd.args(members).output().unwrap();
    assert!(
        out.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn a_layer_escaping_the_rootfs_is_refused_and_leaves_nothing() {
    support::require_root();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("escape"), "pwned").unwrap();
    let victim = work.path().join("escape");
    for (case, transform) in [
        ("dotdot", "s,^escape,../../../escape,"),
        ("nested", "s,^escape,a/../../escape,"),
    ] {
        let layer = gnu_tar(&src, Some(transform), &["escape"]);
        let dir = work.path().join(case);
        let layout = image_with_layer(&dir, &layer, "application/vnd.oci.image.layer.v1.tar");
        let out = dir.join("bundle");
        let err = create_bundle(
            &out,
            &Source::parse(&format!("{}:t", layout.display())).unwrap(),
            &opts(),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, BuildError::PathEscape { .. })
                && text.contains("escape")
                && text.contains("outside the rootfs"),
            "{case}: {text}"
        );
        assert_nothing_left(&out);
        assert!(
            !victim.exists() && !dir.join("escape").exists(),
            "{case}: a file was written outside the rootfs"
        );
    }
}

#[test]
fn symlinks_in_layers_resolve_inside_the_rootfs() {
    support::require_root();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    fs::create_dir_all(src.join("etc")).unwrap();
    // "evil" points at the host's root and above; "evil/etc/pwned" must land in the rootfs.
    symlink("/", src.join("evil")).unwrap();
    symlink("../../../../../../..", src.join("up")).unwrap();
    let l1 = gnu_tar(&src, None, &["evil", "up", "etc"]);
    fs::remove_file(src.join("evil")).unwrap();
    fs::remove_file(src.join("up")).unwrap();
    fs::create_dir_all(src.join("evil/tmp")).unwrap();
    fs::create_dir_all(src.join("up/tmp")).unwrap();
    let marker = format!("proxcage-escape-test-{}", std::process::id());
    fs::write(src.join("evil/tmp").join(&marker), "a").unwrap();
    fs::write(src.join("up/tmp").join(format!("{marker}-up")), "b").unwrap();
    let l2 = gnu_tar(
        &src,
        None,
        &[
            &format!("evil/tmp/{marker}"),
            &format!("up/tmp/{marker}-up"),
        ],
    );
    let plain = "application/vnd.oci.image.layer.v1.tar";
    let layout = image_with_layers(work.path(), &[(&l1, plain), (&l2, plain)]);
    let out = work.path().join("bundle");
    let built = create_bundle(
        &out,
        &Source::parse(&format!("{}:t", layout.display())).unwrap(),
        &opts(),
    )
    .unwrap();
    assert!(
        !Path::new("/tmp").join(&marker).exists(),
        "a layer wrote /tmp/{marker} on the host"
    );
    assert!(!Path::new("/tmp").join(format!("{marker}-up")).exists());
    assert!(built.rootfs().join("tmp").join(&marker).is_file());
    assert!(built
        .rootfs()
        .join("tmp")
        .join(format!("{marker}-up"))
        .is_file());
}

#[test]
fn gzip_zstd_and_plain_layers_unpack_alike() {
    support::require_root();
    support::require_tool("zstd", "zstd");
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    fs::create_dir(&src).unwrap();
    populate_rich_tree(&src);
    let tar = support::require_tool("tar", "tar");
    let plain = Command::new(&tar)
        .arg("-C")
        .arg(&src)
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "-cf",
            "-",
            ".",
        ])
        .output()
        .unwrap()
        .stdout;
    let compress = |tool: &str| {
        let mut child = Command::new(tool)
            .arg("-c")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = plain.clone();
        let writer =
            std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &data).unwrap());
        let out = child.wait_with_output().unwrap().stdout;
        writer.join().unwrap();
        out
    };
    let want = snapshot(
        &src,
        Ignore {
            root: true,
            ..Ignore::default()
        },
    );
    for (name, bytes, mt) in [
        (
            "plain",
            plain.clone(),
            "application/vnd.oci.image.layer.v1.tar",
        ),
        (
            "gzip",
            compress("gzip"),
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
        (
            "zstd",
            compress("zstd"),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
        (
            "docker",
            compress("gzip"),
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        ),
    ] {
        let dir = work.path().join(name);
        let layout = image_with_layer(&dir, &bytes, mt);
        let built = create_bundle(
            &dir.join("bundle"),
            &Source::parse(layout.to_str().unwrap()).unwrap(),
            &opts(),
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
            name,
        );
    }
}

#[test]
fn rootfs_directories_and_tarballs_become_bundles() {
    support::require_root();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    fs::create_dir(&src).unwrap();
    populate_rich_tree(&src);
    let want = snapshot(&src, Ignore::default());

    let copied = create_bundle(
        &work.path().join("copied"),
        &Source::parse(src.to_str().unwrap()).unwrap(),
        &opts().args(["/bin/sh"]),
    )
    .unwrap();
    assert_same(
        &want,
        &snapshot(copied.rootfs(), Ignore::default()),
        "copied rootfs directory",
    );
    let bundle = proxcage_oci::Bundle::load(copied.dir()).unwrap();
    assert_eq!(bundle.rootfs(), copied.dir().join("rootfs"));

    let referenced = create_bundle(
        &work.path().join("referenced"),
        &Source::RootfsDir {
            path: src.clone(),
            copy: false,
        },
        &opts(),
    )
    .unwrap();
    assert_eq!(referenced.rootfs(), src);
    assert!(!referenced.dir().join("rootfs").exists());
    assert_eq!(
        proxcage_oci::Bundle::load(referenced.dir())
            .unwrap()
            .rootfs(),
        src
    );

    let tar = support::require_tool("tar", "tar");
    support::require_tool("zstd", "zstd");
    for (name, flag) in [
        ("rootfs.tar", None),
        ("rootfs.tar.gz", Some("--gzip")),
        ("rootfs.tar.zst", Some("--zstd")),
    ] {
        let path = work.path().join(name);
        let mut cmd = Command::new(&tar);
        cmd.arg("-C")
            .arg(&src)
            .args(["--xattrs", "--xattrs-include=*", "--numeric-owner"]);
        if let Some(f) = flag {
            cmd.arg(f);
        }
        assert!(cmd
            .arg("-cf")
            .arg(&path)
            .arg(".")
            .status()
            .unwrap()
            .success());
        let built = create_bundle(
            &work.path().join(format!("from-{name}")),
            &Source::parse(path.to_str().unwrap()).unwrap(),
            &opts(),
        )
        .unwrap();
        assert_same(&want, &snapshot(built.rootfs(), Ignore::default()), name);
    }

    // A bundle inside the rootfs it would copy is refused.
    let inside = src.join("srv/bundle");
    let err = create_bundle(
        &inside,
        &Source::parse(src.to_str().unwrap()).unwrap(),
        &opts(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("inside the rootfs"), "{err}");
    assert_nothing_left(&inside);

    // OUT that exists and is not empty is refused, and left as it was.
    let err = create_bundle(
        copied.dir(),
        &Source::parse(src.to_str().unwrap()).unwrap(),
        &opts(),
    )
    .unwrap_err();
    assert!(matches!(err, BuildError::OutputExists { .. }), "{err}");
    assert!(copied.dir().join("config.json").is_file());
}

#[test]
fn a_tarball_without_its_end_blocks_unpacks_and_one_cut_inside_a_file_does_not() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), "first").unwrap();
    fs::write(src.join("b"), "x".repeat(700)).unwrap();
    let full = gnu_tar(&src, None, &["a", "b"]);
    // b's data starts after a's header, a's data block and b's header.
    let b_data = 3 * 512;
    // What umoci 0.4 writes: the last entry's data, then nothing.
    let unpadded = work.path().join("unpadded.tar");
    fs::write(&unpadded, &full[..b_data + 700]).unwrap();
    let built = create_bundle(
        &work.path().join("ok"),
        &Source::parse(unpadded.to_str().unwrap()).unwrap(),
        &opts(),
    )
    .unwrap();
    assert_eq!(
        fs::read(built.rootfs().join("b")).unwrap(),
        "x".repeat(700).as_bytes()
    );

    let cut = work.path().join("cut.tar");
    fs::write(&cut, &full[..b_data + 300]).unwrap();
    let out = work.path().join("bad");
    let err = create_bundle(
        &out,
        &Source::parse(cut.to_str().unwrap()).unwrap(),
        &opts(),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("cut.tar") && text.contains("ends"), "{text}");
    assert_nothing_left(&out);
}

#[test]
fn an_image_bundle_runs_under_runc_with_the_images_entrypoint_env_cwd_and_user() {
    let runc = support::require_tool("runc", "runc");
    let image = test_image();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("bundle");
    let source = Source::parse(&format!("{}:latest", image.layout.display())).unwrap();
    let built = create_bundle(
        &out,
        &source,
        &opts().args(["echo $GREETING from $(pwd) as $(id -u):$(id -g)"]),
    )
    .unwrap();
    let id = format!("proxcage-oci-build-{}", std::process::id());
    support::edit_config(built.dir(), |spec| {
        spec["linux"]["cgroupsPath"] = serde_json::json!(format!("/{id}"));
    });
    let root = work.path().join("runc-root");
    let ran = run(
        Command::new(runc)
            .arg("--root")
            .arg(&root)
            .args(["run", "--bundle"])
            .arg(built.dir())
            .arg(&id),
        COMMAND_TIMEOUT,
    )
    .ok();
    assert_eq!(
        ran.stdout.trim(),
        "hello from /home/app as 1000:1000",
        "{ran}"
    );
}
