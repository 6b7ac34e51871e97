//! Any scrape body, in both text formats: no panic.
#![no_main]

use augur::expfmt::{self, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = expfmt::parse(data, Format::Text);
    let _ = expfmt::parse(data, Format::OpenMetrics);
});
