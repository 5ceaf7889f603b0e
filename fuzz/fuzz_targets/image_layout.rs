//! `bundle create` from an OCI image layout whose index, manifest, image config and layer
//! come from the input: no panic, nothing written outside the bundle, and a bundle that
//! is made loads with Bundle::load.
//!
//! The input is four parts separated by `\n----\n`: index.json, the manifest, the image
//! config, the layer (a tar). Before they are written as blobs, `@MANIFEST@`/`@MSIZE@` in
//! the index and `@CONFIG@`/`@CSIZE@`/`@LAYER@`/`@LSIZE@` in the manifest are replaced by
//! the digests and sizes of the other parts, so the fuzzer gets past digest checks.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use proxcage_oci::build::{create_bundle, BundleOptions, Source};
use proxcage_oci::Bundle;
use sha2::{Digest, Sha256};

struct Sandbox {
    top: PathBuf,
    layout: PathBuf,
    out: PathBuf,
}

fn sandbox() -> &'static Sandbox {
    static S: OnceLock<Sandbox> = OnceLock::new();
    S.get_or_init(|| {
        let top = tempfile::Builder::new()
            .prefix("proxcage-fuzz-image-")
            .tempdir()
            .expect("a temporary directory")
            .keep();
        let deep = top.join("a/b/c/d/e/f");
        std::fs::create_dir_all(&deep).expect("the sandbox");
        let layout = top.join("layout");
        std::fs::create_dir_all(layout.join("blobs/sha256")).expect("the layout");
        std::fs::write(
            layout.join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .expect("oci-layout");
        Sandbox {
            top,
            layout,
            out: deep.join("bundle"),
        }
    })
}

fn split(data: &[u8]) -> Vec<&[u8]> {
    const SEP: &[u8] = b"\n----\n";
    let mut parts = Vec::new();
    let mut rest = data;
    while parts.len() < 3 {
        match rest.windows(SEP.len()).position(|w| w == SEP) {
            Some(at) => {
                parts.push(&rest[..at]);
                rest = &rest[at + SEP.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    while parts.len() < 4 {
        parts.push(&[]);
    }
    parts
}

fn digest(bytes: &[u8]) -> String {
    let sum = Sha256::digest(bytes);
    let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn replace(bytes: &[u8], pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut text = String::from_utf8_lossy(bytes).into_owned();
    for (from, to) in pairs {
        text = text.replace(from, to);
    }
    text.into_bytes()
}

fn write_blob(layout: &Path, bytes: &[u8]) -> String {
    let d = digest(bytes);
    let hex = d.trim_start_matches("sha256:");
    std::fs::write(layout.join("blobs/sha256").join(hex), bytes).expect("write a blob");
    d
}

/// The defaults, but a small bound on unpacked data: a layer that expands without end
/// meets the limit instead of the harness's timeout.
fn opts() -> BundleOptions {
    BundleOptions::default().max_unpacked_size(64 << 20)
}

fuzz_target!(|data: &[u8]| {
    let s = sandbox();
    let parts = split(data);
    let (index, manifest, config, layer) = (parts[0], parts[1], parts[2], parts[3]);
    let blobs = s.layout.join("blobs/sha256");
    let _ = std::fs::remove_dir_all(&blobs);
    std::fs::create_dir_all(&blobs).expect("blobs");

    let layer_digest = write_blob(&s.layout, layer);
    let config_digest = write_blob(&s.layout, config);
    let manifest = replace(
        manifest,
        &[
            ("@CONFIG@", &config_digest),
            ("@CSIZE@", &config.len().to_string()),
            ("@LAYER@", &layer_digest),
            ("@LSIZE@", &layer.len().to_string()),
        ],
    );
    let manifest_digest = write_blob(&s.layout, &manifest);
    let index = replace(
        index,
        &[
            ("@MANIFEST@", &manifest_digest),
            ("@MSIZE@", &manifest.len().to_string()),
        ],
    );
    std::fs::write(s.layout.join("index.json"), &index).expect("index.json");

    let source = Source::Image {
        layout: s.layout.clone(),
        reference: None,
    };
    if create_bundle(&s.out, &source, &opts()).is_ok() {
        if let Err(e) = Bundle::load(&s.out) {
            panic!("a bundle made from an image does not load: {e}");
        }
        remove_all(&s.out);
    }
    // Nothing but the layout and the directory chain.
    let mut top: Vec<String> = std::fs::read_dir(&s.top)
        .expect("read the sandbox")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(
        top,
        ["a", "layout"],
        "something escaped into {}",
        s.top.display()
    );
    let deep = s.out.parent().expect("parent");
    assert_eq!(
        std::fs::read_dir(deep).expect("read").count(),
        0,
        "something escaped"
    );
});

fn remove_all(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::remove_dir_all(path).is_ok() {
        return;
    }
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700));
            if let Ok(entries) = std::fs::read_dir(&p) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        }
    }
    std::fs::remove_dir_all(path).expect("remove the bundle");
}
