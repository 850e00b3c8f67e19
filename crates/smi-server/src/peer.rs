//! Who is on the other end of an inbound connection, captured once per connection at the TLS
//! handshake and put in every request's extensions.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use smi_core::SpiffeId;

/// The verified peer of an inbound mTLS connection: a shared handle (every request of the
/// connection carries a clone), whose fields read through it (`peer.identity`, `peer.addr`).
///
/// axum: take it with `Extension<Peer>`; tonic: `request.extensions().get::<Peer>()`;
/// hyper: `request.extensions().get::<Peer>()`.
#[derive(Clone, PartialEq, Eq)]
pub struct Peer(Arc<PeerInfo>);

#[derive(Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub identity: SpiffeId,
    pub addr: SocketAddr,
    /// The local address the connection arrived on (its port is the one policy restricts).
    pub local: SocketAddr,
    /// `identity` as text, made once (it labels the metrics of every request).
    identity_text: Arc<str>,
}

impl Peer {
    pub fn new(identity: SpiffeId, addr: SocketAddr, local: SocketAddr) -> Self {
        Self(Arc::new(PeerInfo {
            identity_text: identity.to_string().into(),
            identity,
            addr,
            local,
        }))
    }

    /// The peer's SPIFFE ID as text, shared.
    pub fn identity_text(&self) -> Arc<str> {
        self.0.identity_text.clone()
    }
}

impl Deref for Peer {
    type Target = PeerInfo;

    fn deref(&self) -> &PeerInfo {
        &self.0
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("identity", &self.0.identity_text)
            .field("addr", &self.0.addr)
            .field("local", &self.0.local)
            .finish()
    }
}
