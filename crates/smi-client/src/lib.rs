//! smi-client: what every meshed process links.
//!
//! - [`Mesh`]: enrollment, renewal and the policy watch; the current certificate, trust bundle
//!   and compiled policy behind lock-free reads. Used by the outbound client here and by the
//!   inbound layers of `smi-server`.
//! - [`outbound`]: a `tower::Service<http::Request<B>>` that routes by TrafficSplit, balances
//!   over endpoints and calls them over pooled mTLS connections; [`MeshLayer`] puts it in front
//!   of an existing client (mesh services through the mesh, everything else unchanged).
//! - [`control`]: the low-level control API client (enroll, renew, mTLS channel).
//! - [`metrics`]: per-edge request statistics of both sides, recorded without a shared lock,
//!   served as Prometheus text (ours and Istio's schema) and reported to the control.
//! - [`trace`]: W3C trace context from inbound to outbound requests, one span per request on
//!   each side, OTLP export (feature `otlp`).
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
pub mod trace;

pub use handles::{Handles, KeepAlive, PolicyHandle, StatusHandle, TlsHandle};
pub use mesh::{Mesh, MeshConfig, MeshError, MeshStatus};
pub use outbound::{DEFAULT_ENDPOINT_WAIT, MeshClient, MeshLayer, OutboundError};
