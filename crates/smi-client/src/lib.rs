//! smi-client: what every meshed process links to reach the control service and call other
//! services (enrollment, certificate renewal, policy watch, outbound routing and balancing).
//!
//! The crate exists so that the workspace has its final shape; its layers are built in the
//! data-plane issue. Until then it re-exports the policy core it will be built on.
#![forbid(unsafe_code)]

pub use smi_core as core;
