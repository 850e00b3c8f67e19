//! smi-server: the inbound side of a meshed process.
//!
//! - [`accept`]: the meshed connections of a listener, each with its [`Peer`]; a tonic
//!   `serve_with_incoming` source (the `Peer` reaches tonic requests as connection info).
//!   Handshake timeout and per-peer connection limit: see [`ServeOptions`] ([`accept_with`]).
//! - [`MeshListener`]: the same connections as an `axum::serve::Listener` (connect info:
//!   [`Peer`]).
//! - [`serve`]: serves any tower HTTP service (axum `Router`, tonic `Routes`) on a TCP listener
//!   with mesh mTLS; the client certificate is required, and the caller's SPIFFE ID reaches every
//!   request as a [`Peer`] extension; header read and idle timeouts, upgrades refused unless
//!   [`ServeOptions::upgrades`] ([`serve_with`]).
//! - [`AuthorizeLayer`]: SMI authorization per request (403 / gRPC `PERMISSION_DENIED`).
//! - [`serve_tcp`]: meshed TCP, authorized by TCPRoute rules at accept and on every policy
//!   change (a connection no longer allowed is closed).
//! - [`serve_admin`]: a workload's optional admin endpoint (`/metrics`, `/status`).
//!
//! The TLS acceptor underneath (handshakes off the accept loop, bounded, with a configuration
//! swapped in place on renewal) is `smi_tls::accept`, shared with the control service.
#![forbid(unsafe_code)]

mod accept;
mod admin;
mod authorize;
mod canonical;
mod connection;
mod in_flight;
mod listener;
mod options;
mod peer;
mod serve;
mod slots;
mod tcp;
mod trace;
mod upgrade;

pub use accept::{MeshIncoming, MeshStream, accept, accept_with};
pub use admin::serve_admin;
pub use authorize::{Authorize, AuthorizeFuture, AuthorizeLayer};
pub use listener::MeshListener;
pub use options::ServeOptions;
pub use peer::Peer;
pub use serve::{serve, serve_with};
pub use tcp::{serve_tcp, serve_tcp_with};
