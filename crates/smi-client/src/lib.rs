//! smi-client: what every meshed process links.
//!
//! - [`Mesh`]: enrollment, renewal and the policy watch; the current certificate, trust bundle
//!   and compiled policy behind lock-free reads. Used by the outbound client here and by the
//!   inbound layers of `smi-server`.
//! - [`outbound`]: a `tower::Service<http::Request<B>>` that routes by TrafficSplit, balances
//!   over endpoints and calls them over pooled mTLS connections; [`MeshLayer`] puts it in front
//!   of an existing client (mesh services through the mesh, everything else unchanged).
//! - [`control`]: the low-level control API client (enroll, renew, mTLS channel).
//!
//! TLS configurations and the identity of peer certificates are `smi-tls`'s, shared with the
//! control service ([`control::Credentials::server_config`] and friends build them).
#![forbid(unsafe_code)]

pub mod control;
pub mod handles;
pub mod mesh;
pub mod metrics;
pub mod outbound;
#[cfg(feature = "test-util")]
pub mod test_util;

pub use handles::{Handles, KeepAlive, PolicyHandle, StatusHandle, TlsHandle};
pub use mesh::{Mesh, MeshConfig, MeshError, MeshStatus};
pub use outbound::{DEFAULT_ENDPOINT_WAIT, MeshClient, MeshLayer, OutboundError};
