//! smi-tls: the one home of the mesh's TLS, shared by workloads and the control service.
//!
//! - [`Mtls`]: every rustls configuration the mesh uses (workload server and client, control
//!   server and client), built by one builder from a trust bundle and our certificate. TLS 1.3
//!   only, aws-lc-rs.
//! - [`peer_identity`]: what a verified peer certificate says (its SPIFFE ID, the services it
//!   may serve, its expiry), read by the naming convention of [`smi_core::san`], with a typed
//!   error.
//! - [`accept`]: TLS handshakes for a TCP listener, off the accept loop and bounded, with a
//!   configuration that can be swapped in place on renewal.
#![forbid(unsafe_code)]

pub mod accept;
mod config;
mod identity;
pub mod transport;
mod verify;

pub use config::{ALPN, Mtls, OwnCertificate, TlsError};
pub use identity::{PeerIdentity, PeerIdentityError, peer_identity, peer_spiffe_id, session_peer};
pub use transport::Transport;
