//! Run with: cargo fuzz run csr   (from the repository root; needs nightly and cargo-fuzz)
//!
//! Arbitrary bytes as a CSR through the CA's signing path: signed or refused, never a panic.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use smi_control::ca::{Authority, CaStore};
use smi_core::ServiceAccount;

fn authority() -> &'static Authority {
    static CA: OnceLock<Authority> = OnceLock::new();
    CA.get_or_init(|| {
        let dir = std::env::temp_dir().join("smi-fuzz-ca");
        CaStore::new(dir).open_or_init("cluster.local").expect("a CA in the temp dir")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = authority().issue_workload(data, &ServiceAccount::new("a", "b"), &[], Duration::from_secs(60));
});
