//! Any analysis template file: errors with positions, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = augur::analysis::template::parse_file("fuzz.toml", &text);
});
