//! The parsers of what pct, pvesh and lxc-info print, and the classification of pct's
//! error messages, on any text: no panic; parsed values are in range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxcage_backend_pct::{error::classify, parse, Vmid};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse::status(text);
    if let Ok(entries) = parse::list(text) {
        for entry in entries {
            assert!(entry.vmid.get() >= 100);
        }
    }
    for (key, _) in parse::config(text) {
        assert!(!key.is_empty());
    }
    if let Ok(vmid) = parse::nextid(text) {
        assert!(vmid.get() >= 100);
    }
    let _ = parse::init_pid(text);
    let _ = classify(text, None).to_string();
    let _ = classify(text, Vmid::new(100).ok()).to_string();
});
