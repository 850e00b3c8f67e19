//! Connections to one endpoint: mTLS, ALPN-selected HTTP/2 (one shared connection) or HTTP/1.1
//! (a small pool of idle connections), and the number of requests in flight for balancing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use smi_core::SpiffeId;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::OutboundError;
use super::body::OutboundBody;
use crate::metrics::PeerNames;
use smi_tls::{Transport, session_peer};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const IDLE_HTTP1: usize = 16;

pub(crate) enum Sender<B> {
    H2(http2::SendRequest<B>),
    H1(http1::SendRequest<B>),
}

pub(crate) struct EndpointConns<B> {
    pub(crate) addr: SocketAddr,
    pub(crate) identity: SpiffeId,
    /// The endpoint's names for metrics: its identity, then what its certificate says (read at
    /// each handshake; a request shares them).
    peer: ArcSwap<PeerNames>,
    in_flight: AtomicUsize,
    h2: ArcSwapOption<http2::SendRequest<B>>,
    idle_h1: Mutex<Vec<http1::SendRequest<B>>>,
    /// Serializes connection attempts, so that a burst opens one HTTP/2 connection, not many.
    connecting: tokio::sync::Mutex<()>,
}

/// Counts a request in flight until dropped.
pub(crate) struct InFlight<B>(Arc<EndpointConns<B>>);

impl<B> Drop for InFlight<B> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<B: OutboundBody> EndpointConns<B> {
    pub(crate) fn new(addr: SocketAddr, identity: SpiffeId) -> Self {
        Self {
            addr,
            peer: ArcSwap::from_pointee(PeerNames::new(&identity, None)),
            identity,
            in_flight: AtomicUsize::new(0),
            h2: ArcSwapOption::empty(),
            idle_h1: Mutex::new(Vec::new()),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn load(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Who answers on this endpoint, as the metrics name it.
    pub(crate) fn peer_names(&self) -> Arc<PeerNames> {
        self.peer.load_full()
    }

    pub(crate) fn start(self: &Arc<Self>) -> InFlight<B> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// A connection ready for one request; connects if there is none (one attempt at a time).
    pub(crate) async fn sender(&self, tls: Arc<ClientConfig>) -> Result<Sender<B>, OutboundError> {
        if let Some(sender) = self.reusable() {
            return Ok(sender);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(sender) = self.reusable() {
            return Ok(sender);
        }
        self.connect(tls).await
    }

    /// A pooled connection ready for one more request, if there is one (no await).
    pub(crate) fn reusable(&self) -> Option<Sender<B>> {
        if let Some(h2) = self.h2.load_full() {
            if !h2.is_closed() {
                return Some(Sender::H2((*h2).clone()));
            }
            self.h2.store(None);
        }
        let mut idle = self.idle_h1.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(h1) = idle.pop() {
            if h1.is_ready() {
                return Some(Sender::H1(h1));
            }
        }
        None
    }

    /// Forgets the shared HTTP/2 connection (it is going away), so that the next request opens
    /// a new one.
    pub(crate) fn forget_h2(&self) {
        self.h2.store(None);
    }

    /// Returns an HTTP/1.1 connection for reuse once its response has been received.
    pub(crate) fn release(&self, sender: Sender<B>) {
        if let Sender::H1(h1) = sender {
            let mut idle = self.idle_h1.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < IDLE_HTTP1 && !h1.is_closed() {
                idle.push(h1);
            }
        }
    }

    async fn connect(&self, tls: Arc<ClientConfig>) -> Result<Sender<B>, OutboundError> {
        let addr = self.addr;
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| OutboundError::Connect {
                addr,
                source: std::io::ErrorKind::TimedOut.into(),
            })?
            .map_err(|source| OutboundError::Connect { addr, source })?;
        let _ = tcp.set_nodelay(true);
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TlsConnector::from(tls).connect(ServerName::IpAddress(addr.ip().into()), tcp),
        )
        .await
        .map_err(|_| OutboundError::Tls {
            addr,
            message: "handshake timed out".into(),
        })?
        .map_err(|e| OutboundError::Tls {
            addr,
            message: e.to_string(),
        })?;
        let (tcp, session) = stream.into_inner();
        let stream = Transport::new(tcp, session);
        let (_, session) = stream.get_ref();
        let presented =
            session_peer(session, SystemTime::now()).map_err(|e| OutboundError::Tls {
                addr,
                message: e.to_string(),
            })?;
        if presented.spiffe_id != self.identity {
            return Err(OutboundError::IdentityMismatch {
                addr,
                expected: self.identity.to_string(),
                presented: presented.spiffe_id.to_string(),
            });
        }
        let names = PeerNames::new(&presented.spiffe_id, presented.workload.as_ref());
        if *self.peer.load_full() != names {
            self.peer.store(Arc::new(names));
        }
        let h2 = session.alpn_protocol() == Some(b"h2");
        // hyper's HTTP/2 connection drives this stream, polling it again after every flush, so
        // its flushes may be coalesced (smi_tls::Transport).
        let io = TokioIo::new(if h2 { stream.coalescing() } else { stream });
        let http = |source| OutboundError::Http { addr, source };
        if h2 {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(hyper_util::rt::TokioTimer::new())
                .keep_alive_interval(Duration::from_secs(20))
                .handshake(io)
                .await
                .map_err(http)?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(%addr, error = %e, "HTTP/2 connection ended");
                }
            });
            self.h2.store(Some(Arc::new(sender.clone())));
            Ok(Sender::H2(sender))
        } else {
            let (sender, conn) = http1::handshake(io).await.map_err(http)?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(%addr, error = %e, "HTTP/1.1 connection ended");
                }
            });
            Ok(Sender::H1(sender))
        }
    }
}

/// Why a request got no response.
pub(crate) enum SendError<B> {
    /// The connection closed (or was going away) before the request was written: it can be
    /// sent again, on another connection.
    NotSent(Box<Request<B>>, hyper::Error),
    /// The request may have reached the server: it must not be sent again.
    Failed(hyper::Error),
}

impl<B: OutboundBody> Sender<B> {
    pub(crate) async fn send(
        &mut self,
        request: Request<B>,
    ) -> Result<Response<Incoming>, SendError<B>> {
        let result = match self {
            Sender::H2(s) => s.try_send_request(request).await,
            Sender::H1(s) => {
                if let Err(e) = s.ready().await {
                    return Err(SendError::NotSent(Box::new(request), e));
                }
                s.try_send_request(request).await
            }
        };
        result.map_err(|mut e| match e.take_message() {
            Some(request) => SendError::NotSent(Box::new(request), e.into_error()),
            None => SendError::Failed(e.into_error()),
        })
    }

    pub(crate) fn is_h2(&self) -> bool {
        matches!(self, Sender::H2(_))
    }
}
