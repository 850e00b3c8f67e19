//! Accepting meshed connections: TLS with a client certificate required (see [`crate::tls`]),
//! the peer's SPIFFE ID read once per connection. [`MeshStream`] carries it; for tonic it is the
//! connection info, so `Server::builder().serve_with_incoming(accept(listener, &mesh))` puts the
//! [`Peer`] in every request's extensions too.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use smi_client::Mesh;
use smi_client::tls::peer_spiffe_id;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_stream::{Stream, StreamExt};

use crate::peer::Peer;
use crate::tls::incoming;

/// An accepted mTLS connection and who is on the other end.
#[derive(Debug)]
pub struct MeshStream {
    inner: TlsStream<TcpStream>,
    peer: Peer,
}

impl MeshStream {
    pub fn peer(&self) -> &Peer {
        &self.peer
    }
}

/// The meshed connections of `listener`. A connection whose certificate carries no usable
/// SPIFFE ID is dropped (logged at debug); the stream ends when the listener fails.
pub fn accept(
    listener: TcpListener,
    mesh: &Mesh,
) -> impl Stream<Item = io::Result<MeshStream>> + use<> {
    let local = listener.local_addr();
    incoming(listener, mesh.server_tls()).filter_map(move |connection| {
        let tls = match connection {
            Ok(tls) => tls,
            Err(e) => return Some(Err(e)),
        };
        let local = match &local {
            Ok(local) => *local,
            Err(e) => return Some(Err(io::Error::new(e.kind(), e.to_string()))),
        };
        let (tcp, session) = tls.get_ref();
        let addr = tcp.peer_addr().unwrap_or(local);
        match peer_spiffe_id(session.peer_certificates()) {
            Ok(identity) => Some(Ok(MeshStream {
                inner: tls,
                peer: Peer::new(identity, addr, local),
            })),
            Err(reason) => {
                tracing::debug!(%addr, %reason, "connection without a usable SPIFFE ID; closing");
                None
            }
        }
    })
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
