//! PveConfig::parse on any bytes: no panic, and what parses renders to text that parses
//! back to the same config.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxcage_lxc_config::PveConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = PveConfig::parse(text) {
        let again = PveConfig::parse(&config.render()).expect("a rendered config parses");
        assert_eq!(again, config);
    }
});
