//! smi-core: the SMI model, its loader and validation, workload identity, and the compiled
//! policy that every part of the mesh decides with. No I/O, no async.
#![forbid(unsafe_code)]

pub mod identity;
pub mod load;
pub mod model;
pub mod pem;
pub mod policy;
#[cfg(feature = "proto")]
pub mod proto;
pub mod san;
pub mod telemetry;
pub mod token;

pub use identity::{
    CONTROL_ACCOUNT, DEFAULT_CLUSTER_DOMAIN, DEFAULT_TRUST_DOMAIN, IdentityError, NameKind,
    ServiceAccount, ServiceRef, SpiffeId, control_spiffe_id,
};
pub use load::{Diagnostic, Format, Loaded, Loader, Severity, load_str, load_value};
pub use policy::{Options, PathMatch, Snapshot};
pub use san::{SanError, Sans, WorkloadNames};
