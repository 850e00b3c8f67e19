//! Who is on the other end of an inbound connection, captured once per connection at the TLS
//! handshake and put in every request's extensions.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use smi_client::metrics::PeerNames;
use smi_core::SpiffeId;
use smi_core::telemetry::Workload;

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
    /// The workload and pod its certificate names, when it names them.
    pub workload: Option<Workload>,
    /// `identity` as text, made once (it labels the metrics of every request).
    identity_text: Arc<str>,
    /// Its names as the metrics label them, made once.
    names: Arc<PeerNames>,
}

impl Peer {
    /// A peer whose certificate names no workload.
    pub fn new(identity: SpiffeId, addr: SocketAddr, local: SocketAddr) -> Self {
        Self::with_workload(identity, None, addr, local)
    }

    /// A peer whose certificate names its workload and pod (`smi_tls::PeerIdentity`).
    pub fn with_workload(
        identity: SpiffeId,
        workload: Option<Workload>,
        addr: SocketAddr,
        local: SocketAddr,
    ) -> Self {
        Self(Arc::new(PeerInfo {
            identity_text: identity.to_string().into(),
            names: Arc::new(PeerNames::new(&identity, workload.as_ref())),
            identity,
            addr,
            local,
            workload,
        }))
    }

    /// The peer's SPIFFE ID as text, shared.
    pub fn identity_text(&self) -> Arc<str> {
        self.0.identity_text.clone()
    }

    /// The peer's names as the metrics label its requests, shared.
    pub fn names(&self) -> &Arc<PeerNames> {
        &self.0.names
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
            .field("workload", &self.0.workload)
            .field("addr", &self.0.addr)
            .field("local", &self.0.local)
            .finish()
    }
}
