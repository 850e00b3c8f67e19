//! smi-control: the control service of smi-mesh and the `smictl` command line.
//!
//! - [`traits`]: the parts a control is built from (policy source, endpoint sources, state
//!   store, authenticators); [`files`]: today's implementations on files;
//!   [`serve::ControlBuilder`] assembles them.
//! - [`hub`]: the versioned published state and each workload's view of it; [`api`] serves it
//!   (protobuf only there and in [`wire`] and [`chunk`]).
//! - [`ca`], [`enroll`], [`revocation`]: the certificate authority, authentication, the deny
//!   list and token uses.
//! - [`telemetry`]: workloads' traffic reports, their store, and the SMI TrafficMetrics API.
//! - [`cli`]: the `smictl` commands.
#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod ca;
pub mod chunk;
pub mod cli;
pub mod distribute;
pub mod enroll;
pub mod etcd;
pub mod files;
pub mod hub;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
pub mod quota;
pub mod registry;
pub mod revocation;
pub mod serve;
pub mod source;
pub mod status;
pub mod store_runtime;
pub mod telemetry;
pub mod traits;
pub mod wire;
