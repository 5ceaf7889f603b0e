//! LxcConfig::parse on any bytes: no panic, and what parses renders to text that parses
//! back to the same entries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxcage_lxc_config::LxcConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = LxcConfig::parse(text) {
        let again = LxcConfig::parse(&config.render()).expect("a rendered config parses");
        assert_eq!(again, config);
    }
});
