//! `bundle create` from a rootfs tarball with any content (tar, or gzip/zstd by magic):
//! no panic, and nothing is ever written outside the bundle being built. Entries named
//! `../x`, absolute names, symlinks out of the rootfs followed by entries through them and
//! hardlinks to outside files must all stay inside or be refused.
//!
//! The bundle is built eight directories deep in a private tree; after each input the
//! tree must hold exactly what the harness put there, so an escape of up to eight `..`
//! (or through a relative symlink) is caught. Escapes to absolute host paths are what
//! the tests in crates/oci check with planted symlinks; run this as an unprivileged user
//! if you want the kernel to stop such an escape too.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use proxcage_oci::build::{create_bundle, BundleOptions, Source};

const DEPTH: &[&str] = &["a", "b", "c", "d", "e", "f", "g", "h"];

struct Sandbox {
    top: PathBuf,
    input: PathBuf,
    out: PathBuf,
}

fn sandbox() -> &'static Sandbox {
    static S: OnceLock<Sandbox> = OnceLock::new();
    S.get_or_init(|| {
        let top = tempfile::Builder::new()
            .prefix("proxcage-fuzz-tar-")
            .tempdir()
            .expect("a temporary directory")
            .keep();
        let deep = DEPTH.iter().fold(top.clone(), |p, c| p.join(c));
        std::fs::create_dir_all(&deep).expect("the sandbox");
        Sandbox {
            input: top.join("input"),
            out: deep.join("bundle"),
            top,
        }
    })
}

/// The sandbox holds the input, the chain of directories and nothing else.
fn check_sandbox(s: &Sandbox) {
    let names = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("read the sandbox")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(&s.top),
        ["a", "input"],
        "something escaped into {}",
        s.top.display()
    );
    let mut dir = s.top.clone();
    for (i, c) in DEPTH.iter().enumerate() {
        dir = dir.join(c);
        let want: Vec<&str> = DEPTH.get(i + 1).into_iter().copied().collect();
        assert_eq!(
            names(&dir),
            want,
            "something escaped into {}",
            dir.display()
        );
    }
}

/// The defaults, but a small bound on unpacked data: a layer that expands without end
/// meets the limit instead of the harness's timeout.
fn opts() -> BundleOptions {
    BundleOptions::default().max_unpacked_size(64 << 20)
}

fuzz_target!(|data: &[u8]| {
    let s = sandbox();
    std::fs::write(&s.input, data).expect("write the input");
    let source = Source::RootfsTarball {
        path: s.input.clone(),
    };
    let result = create_bundle(&s.out, &source, &opts());
    if result.is_ok() {
        assert!(s.out.join("config.json").is_file());
        assert!(s.out.join("rootfs").is_dir());
        remove_all(&s.out);
    }
    check_sandbox(s);
});

/// Removes the bundle, making read-only directories writable first.
fn remove_all(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::remove_dir_all(path).is_ok() {
        return;
    }
    for entry in walk(path) {
        let _ = std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o700));
    }
    std::fs::remove_dir_all(path).expect("remove the bundle");
}

fn walk(path: &Path) -> Vec<PathBuf> {
    let mut out = vec![path.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let p = out[i].clone();
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            if let Ok(entries) = std::fs::read_dir(&p) {
                out.extend(entries.flatten().map(|e| e.path()));
            }
        }
        i += 1;
    }
    out
}
