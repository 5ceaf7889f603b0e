//! The config file (`proxcage_engine::Config`) on any UTF-8 text: no panic in parsing
//! (every `[backends.NAME]` table against its backend's settings), in building the
//! router, or in the security policy.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use proxcage_engine::{Config, Registry};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/proxcage/config.toml");
    let registry = Registry::builtin();
    match Config::parse(text, path, &registry) {
        Ok(config) => {
            let _ = config.router(&registry);
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains("/etc/proxcage/config.toml"), "{message}");
        }
    }
});
