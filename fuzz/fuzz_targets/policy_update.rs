//! Run with: cargo fuzz run policy_update   (from the repository root; needs nightly and cargo-fuzz)
//!
//! Arbitrary bytes as the control API's PolicyUpdate, decoded, converted and compiled as a
//! workload does: used or refused, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use smi_core::model::PolicySet;
use smi_core::proto::v1;
use smi_core::{Options, Snapshot};

fuzz_target!(|data: &[u8]| {
    if let Ok(update) = v1::PolicyUpdate::decode(data) {
        if let Ok(policy) = PolicySet::try_from(update.policy.unwrap_or_default()) {
            let _ = Snapshot::compile(policy, Options::default());
        }
    }
});
