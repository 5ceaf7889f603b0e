//! The config file (`crates/cli/src/config.rs`, compiled in here because the CLI is a
//! binary crate) on any UTF-8 text: no panic in parsing, in building the router, or in
//! the security policy.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/cli/src/config.rs"]
#[allow(dead_code)]
mod config;
#[path = "../../crates/cli/src/security.rs"]
#[allow(dead_code)]
mod security;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/proxcage/config.toml");
    match config::Config::parse(text, path) {
        Ok(config) => {
            let _ = config.router();
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains("/etc/proxcage/config.toml"), "{message}");
        }
    }
});
