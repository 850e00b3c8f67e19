//! The TLS listener as axum serves it, and what each connection brings its requests: the peer
//! address and the client certificate chain, captured once per connection ([`Peer`], read by
//! the guard as axum's `ConnectInfo`).
//!
//! The chain is verified per request against the front-proxy CA current then (it can change
//! under a long-lived connection), and the verdict is kept on the connection until the CA
//! changes, so a connection pays for one verification per CA.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use rustls::pki_types::CertificateDer;
use smi_tls::accept::SharedServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::requestheader::{FrontProxy, Unauthenticated};

/// One connection's peer.
#[derive(Clone, Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    /// `None`: the client sent no certificate.
    pub certificates: Option<Arc<PeerCertificates>>,
}

/// A client's certificate chain (leaf first), proven by the handshake to be the client's
/// (it signed with the leaf's key), not yet trusted.
#[derive(Debug)]
pub struct PeerCertificates {
    chain: Vec<CertificateDer<'static>>,
    /// The verdict of [`FrontProxy::verify`] for the front proxy of that generation.
    verdict: Mutex<Option<(u64, Result<(), Unauthenticated>)>>,
}

// === impl Peer ===

impl Peer {
    /// Whether the connection is the front proxy's, by `front`.
    pub fn front_proxy(&self, front: &FrontProxy) -> Result<(), Unauthenticated> {
        let Some(certificates) = &self.certificates else {
            return Err(Unauthenticated::NoCertificate);
        };
        certificates.verified(front)
    }
}

// === impl PeerCertificates ===

impl PeerCertificates {
    pub fn new(chain: Vec<CertificateDer<'static>>) -> Self {
        Self {
            chain,
            verdict: Mutex::new(None),
        }
    }

    fn verified(&self, front: &FrontProxy) -> Result<(), Unauthenticated> {
        let cached = |v: &Option<(u64, Result<(), Unauthenticated>)>| {
            v.as_ref()
                .filter(|(generation, _)| *generation == front.generation)
                .map(|(_, verdict)| verdict.clone())
        };
        if let Some(verdict) = self.verdict.lock().ok().and_then(|v| cached(&v)) {
            return verdict;
        }
        // Verified outside the lock; two requests racing on a new CA both verify.
        let verdict = front.verify(&self.chain);
        if let Ok(mut slot) = self.verdict.lock() {
            *slot = Some((front.generation, verdict.clone()));
        }
        verdict
    }
}

/// TLS connections of a TCP listener (handshakes off the accept loop, bounded, with the config
/// current at accept: [`smi_tls::accept`]), each with its [`Peer`].
#[derive(Debug)]
pub struct TlsListener {
    incoming: ReceiverStream<io::Result<TlsStream<TcpStream>>>,
    local: SocketAddr,
}

// === impl TlsListener ===

impl TlsListener {
    pub fn new(listener: TcpListener, tls: SharedServerConfig) -> io::Result<Self> {
        let local = listener.local_addr()?;
        Ok(Self {
            incoming: smi_tls::accept::incoming(listener, tls),
            local,
        })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.incoming.next().await {
                Some(Ok(tls)) => {
                    let (tcp, session) = tls.get_ref();
                    let Ok(addr) = tcp.peer_addr() else {
                        continue;
                    };
                    let certificates = session
                        .peer_certificates()
                        .filter(|chain| !chain.is_empty())
                        .map(|chain| {
                            let chain = chain.iter().map(|c| c.clone().into_owned()).collect();
                            Arc::new(PeerCertificates::new(chain))
                        });
                    return (tls, Peer { addr, certificates });
                }
                Some(Err(e)) => {
                    tracing::error!(addr = %self.local, error = %e, "aggregated API listener failed");
                }
                // The listener failed for good (logged above): serve what is connected until
                // shutdown.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(Peer {
            addr: self.local,
            certificates: None,
        })
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}
