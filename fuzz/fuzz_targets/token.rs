//! Run with: cargo fuzz run token   (from the repository root; needs nightly and cargo-fuzz)
//!
//! Arbitrary bytes as a join token: parsed or refused, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = smi_core::token::parse(&String::from_utf8_lossy(data));
});
