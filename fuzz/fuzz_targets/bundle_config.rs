//! Bundle::from_config_bytes (what Bundle::load does with config.json's bytes) on any
//! bytes: no panic; what loads has a non-empty process.args, an ociVersion of 1.x.y, a
//! mount source per mount, and a rootfs inside the host's filesystem.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use proxcage_oci::Bundle;

/// One bundle directory with a `rootfs` for the whole run.
fn bundle_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("proxcage-fuzz-bundle-")
            .tempdir()
            .expect("a temporary directory")
            .keep();
        std::fs::create_dir(dir.join("rootfs")).expect("rootfs");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = bundle_dir();
    match Bundle::from_config_bytes(dir, data) {
        Ok(bundle) => {
            let process = bundle.spec().process().as_ref().expect("a process");
            assert!(!process.args().as_ref().expect("args").is_empty());
            assert!(bundle.spec().version().starts_with("1."));
            let mounts = bundle.spec().mounts().as_ref().map_or(0, Vec::len);
            assert_eq!(bundle.mount_sources().len(), mounts);
            assert!(bundle.rootfs().is_absolute());
        }
        Err(e) => {
            // Every error names the file.
            let message = e.to_string();
            assert!(message.contains("config.json"), "{message}");
        }
    }
});
