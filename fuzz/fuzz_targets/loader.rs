//! Run with: cargo fuzz run loader   (from the repository root; see BENCHMARKS.md / README)
//!
//! Arbitrary bytes as YAML and as JSON through the loader and the compiler: nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smi_core::{Format, Options, Snapshot, load_str};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for format in [Format::Yaml, Format::Json] {
        let loaded = load_str("fuzz", &text, format);
        for d in &loaded.diagnostics {
            let _ = d.to_string();
        }
        let _ = Snapshot::compile(loaded.policy, Options::default());
    }
});
