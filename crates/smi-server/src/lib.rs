//! smi-server: the inbound side of a meshed process (mTLS accept, peer identity, authorization).
//!
//! The crate exists so that the workspace has its final shape; its layers are built in the
//! data-plane issue. Until then it re-exports the policy core it will be built on.
#![forbid(unsafe_code)]

pub use smi_core as core;
