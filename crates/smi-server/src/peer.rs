//! Who is on the other end of an inbound connection, captured once per connection at the TLS
//! handshake and put in every request's extensions.

use std::net::SocketAddr;

use smi_core::SpiffeId;

/// The verified peer of an inbound mTLS connection.
///
/// axum: take it with `Extension<Peer>`; tonic: `request.extensions().get::<Peer>()`;
/// hyper: `request.extensions().get::<Peer>()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub identity: SpiffeId,
    pub addr: SocketAddr,
    /// The local address the connection arrived on (its port is the one policy restricts).
    pub local: SocketAddr,
}
