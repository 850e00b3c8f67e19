//! Upgraded connections stay under the server's control. With upgrades on (see
//! [`crate::ServeOptions::upgrades`]), hyper hands an upgraded connection's IO to the application
//! and its connection future ends; the serving task keeps a [`Handle`] to the socket, learns when
//! the IO is finally dropped, and on a revocation shuts the socket down (both directions), so
//! the application's reads end and its writes fail wherever it holds the stream.
//!
//! The handle is a duplicate of the socket's descriptor; `shutdown(2)` on it acts on the shared
//! socket. It costs one descriptor per connection, only on servers that allow upgrades.

use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

use crate::accept::MeshStream;

/// A connection's IO that tells its [`Handle`] when it is dropped.
#[derive(Debug)]
pub(crate) struct Tracked {
    inner: MeshStream,
    _dropped: oneshot::Sender<()>,
}

/// The serving task's hold on a connection's socket.
#[derive(Debug)]
pub(crate) struct Handle {
    socket: std::net::TcpStream,
    dropped: oneshot::Receiver<()>,
}

/// Wraps `stream` for serving with upgrades.
pub(crate) fn track(stream: MeshStream) -> io::Result<(Tracked, Handle)> {
    let socket = duplicate(stream.tcp())?;
    let (tx, rx) = oneshot::channel();
    let tracked = Tracked {
        inner: stream,
        _dropped: tx,
    };
    Ok((
        tracked,
        Handle {
            socket,
            dropped: rx,
        },
    ))
}

// === impl Handle ===

impl Handle {
    /// Resolves when the connection's IO has been dropped (by hyper, or by the application
    /// that took it over).
    pub(crate) async fn dropped(&mut self) {
        let _ = (&mut self.dropped).await;
    }

    /// Ends the connection now: the peer sees it close, the holder of the IO sees end of
    /// stream on reads and errors on writes.
    pub(crate) fn shutdown(&self) {
        if let Err(e) = self.socket.shutdown(Shutdown::Both)
            && e.kind() != io::ErrorKind::NotConnected
        {
            tracing::debug!(error = %e, "shutting down an upgraded connection failed");
        }
    }
}

#[cfg(unix)]
fn duplicate(tcp: &tokio::net::TcpStream) -> io::Result<std::net::TcpStream> {
    use std::os::fd::AsFd;
    Ok(tcp.as_fd().try_clone_to_owned()?.into())
}

#[cfg(windows)]
fn duplicate(tcp: &tokio::net::TcpStream) -> io::Result<std::net::TcpStream> {
    use std::os::windows::io::AsSocket;
    Ok(tcp.as_socket().try_clone_to_owned()?.into())
}

#[cfg(not(any(unix, windows)))]
fn duplicate(_: &tokio::net::TcpStream) -> io::Result<std::net::TcpStream> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "upgrades need a socket handle to close them on revocation",
    ))
}

// === impl Tracked ===

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tracked {
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
