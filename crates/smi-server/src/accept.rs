//! Accepting meshed connections: TLS with a client certificate required (`smi_tls::accept`),
//! the peer's SPIFFE ID read once per connection. [`MeshStream`] carries it; for tonic it is the
//! connection info, so `Server::builder().serve_with_incoming(accept(listener, &mesh))` puts the
//! [`Peer`] in every request's extensions too.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::SystemTime;

use smi_client::{Handles, KeepAlive};
use smi_tls::accept::incoming_with;
use smi_tls::{Transport, session_peer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;

use crate::options::ServeOptions;
use crate::peer::Peer;
use crate::slots::{Slot, Slots};

/// An accepted mTLS connection and who is on the other end. It holds the peer's connection
/// slot (see [`ServeOptions::max_connections_per_peer`]) until it is dropped.
#[derive(Debug)]
pub struct MeshStream {
    inner: Transport<TcpStream>,
    peer: Peer,
    _slot: Slot,
}

impl MeshStream {
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The TCP socket underneath (for shutting it down from outside, see `crate::upgrade`).
    pub(crate) fn tcp(&self) -> &TcpStream {
        self.inner.get_ref().0
    }

    /// Coalesces flushes ([`Transport::coalescing`]) if the connection speaks HTTP/2: for
    /// hyper's connections, which poll the stream again after every flush, and where many
    /// responses are written at once. Not for a stream handed to the application.
    pub(crate) fn coalescing(self) -> Self {
        if self.inner.get_ref().1.alpn_protocol() != Some(b"h2") {
            return self;
        }
        Self {
            inner: self.inner.coalescing(),
            ..self
        }
    }
}

/// The meshed connections of `listener`, with the default [`ServeOptions`].
pub fn accept(listener: TcpListener, handles: impl Into<Handles>) -> MeshIncoming {
    accept_with(listener, handles, &ServeOptions::default())
}

/// The meshed connections of `listener`. A client that does not complete its handshake within
/// `options.handshake_timeout` is dropped; so is a connection whose certificate carries no
/// usable SPIFFE ID (logged at debug), and one over the per-peer or listener-wide connection
/// limit (logged at info, rate-limited). The stream ends when the listener fails.
pub fn accept_with(
    listener: TcpListener,
    handles: impl Into<Handles>,
    options: &ServeOptions,
) -> MeshIncoming {
    let handles = handles.into();
    MeshIncoming {
        local: listener.local_addr(),
        slots: Slots::new(options.max_connections_per_peer, options.max_connections),
        handshakes: incoming_with(listener, handles.tls.server(), options.handshake_timeout),
        _keep_alive: handles.keep_alive,
    }
}

/// The stream [`accept`] returns: completed handshakes, each with its [`Peer`].
#[derive(Debug)]
pub struct MeshIncoming {
    handshakes: ReceiverStream<io::Result<TlsStream<TcpStream>>>,
    slots: Arc<Slots>,
    local: io::Result<SocketAddr>,
    /// A mesh moved in keeps renewing the certificate the handshakes use.
    _keep_alive: KeepAlive,
}

impl MeshIncoming {
    /// The connection of a completed handshake, or `None` when it must be closed.
    fn admit(&self, tls: TlsStream<TcpStream>) -> Option<io::Result<MeshStream>> {
        let local = match &self.local {
            Ok(local) => *local,
            Err(e) => return Some(Err(io::Error::new(e.kind(), e.to_string()))),
        };
        let (tcp, session) = tls.get_ref();
        let addr = tcp.peer_addr().unwrap_or(local);
        let presented = match session_peer(session, SystemTime::now()) {
            Ok(presented) => presented,
            Err(reason) => {
                tracing::debug!(%addr, %reason, "connection without a usable SPIFFE ID; closing");
                return None;
            }
        };
        // Over the limit: dropping `tls` closes the connection.
        let slot = self.slots.take(&presented.spiffe_id)?;
        let peer = Peer::with_workload(presented.spiffe_id, presented.workload, addr, local);
        let (tcp, session) = tls.into_inner();
        Some(Ok(MeshStream {
            inner: Transport::new(tcp, session),
            peer,
            _slot: slot,
        }))
    }
}

impl Stream for MeshIncoming {
    type Item = io::Result<MeshStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            let admitted = match ready!(Pin::new(&mut this.handshakes).poll_next(cx)) {
                None => return Poll::Ready(None),
                Some(Err(e)) => Some(Err(e)),
                Some(Ok(tls)) => this.admit(tls),
            };
            if let Some(admitted) = admitted {
                return Poll::Ready(Some(admitted));
            }
        }
    }
}

impl AsyncRead for MeshStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for MeshStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for MeshStream {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}
