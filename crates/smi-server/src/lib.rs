//! smi-server: the inbound side of a meshed process.
//!
//! - [`tls`]: a TLS acceptor for tokio listeners whose configuration can be swapped while it
//!   runs (certificate renewal, trust bundle rotation), yielding streams that tonic's
//!   `serve_with_incoming`, hyper-util and axum accept.
//!
//! The authorization layers are built in the data-plane issue.
#![forbid(unsafe_code)]

pub mod tls;
