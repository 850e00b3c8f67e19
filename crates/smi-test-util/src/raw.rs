//! HTTP over a mesh TLS connection, seen from the connection: reading until the server closes
//! it, reading a response head byte by byte, and a hyper client connection of either version
//! whose end can be awaited. For tests of what a server does to misbehaving clients.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use smi_client::Mesh;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;

use crate::tls::{connect, with_alpn};

/// How long a server may take to answer or to close a connection.
pub const WAIT: Duration = Duration::from_secs(5);

/// An mTLS connection to `addr` with `mesh`'s certificate, offering only the ALPN `alpn`.
pub async fn mtls(mesh: &Mesh, addr: SocketAddr, alpn: &[u8]) -> TlsStream<TcpStream> {
    connect(addr, with_alpn(&mesh.client_tls(), alpn))
        .await
        .unwrap_or_else(|e| panic!("mTLS to {addr}: {e}"))
}

/// Reads until the server closes the connection (end of stream or an error), at most [`WAIT`];
/// returns what arrived before.
pub async fn until_closed<S: AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(WAIT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server did not close the connection within {WAIT:?} (got {:?})",
        String::from_utf8_lossy(&got)
    );
    got
}

/// Reads an HTTP/1.1 response head, at most [`WAIT`].
pub async fn head<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    tokio::time::timeout(WAIT, async {
        while !got.ends_with(b"\r\n\r\n") {
            let n = stream
                .read(&mut byte)
                .await
                .expect("reading a response head");
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
            got.push(byte[0]);
        }
    })
    .await
    .expect("a response head");
    String::from_utf8(got).expect("an ASCII response head")
}

/// A hyper client connection of either version; [`Client::closed`] waits for the server to
/// close it.
#[derive(Debug)]
pub struct Client {
    send: Sender,
    ended: JoinHandle<()>,
}

#[derive(Debug)]
enum Sender {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
}

impl Client {
    /// Opens an HTTP/2 (`h2`) or HTTP/1.1 connection to `addr` with `mesh`'s certificate.
    pub async fn open(mesh: &Mesh, addr: SocketAddr, h2: bool) -> Client {
        let (send, ended) = if h2 {
            let io = TokioIo::new(mtls(mesh, addr, b"h2").await);
            let (send, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .expect("an HTTP/2 handshake");
            (Sender::H2(send), drive(conn))
        } else {
            let io = TokioIo::new(mtls(mesh, addr, b"http/1.1").await);
            let (send, conn) = http1::handshake(io).await.expect("an HTTP/1.1 handshake");
            (Sender::H1(send), drive(conn))
        };
        Client { send, ended }
    }

    /// GETs `path` (Host `bookstore.bookstore`); the status and the whole body.
    pub async fn get(&mut self, path: &str) -> hyper::Result<(StatusCode, String)> {
        let request = Request::get(path)
            .header("host", "bookstore.bookstore")
            .body(Empty::new())
            .expect("a GET request");
        let response = match &mut self.send {
            Sender::H1(send) => {
                send.ready().await?;
                send.send_request(request).await?
            }
            Sender::H2(send) => {
                send.ready().await?;
                send.send_request(request).await?
            }
        };
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// Waits for the server to close the connection, at most [`WAIT`].
    pub async fn closed(self) {
        let Client { send, ended } = self;
        tokio::time::timeout(WAIT, ended)
            .await
            .expect("the server closes the connection within 5 s")
            .expect("the connection task");
        drop(send);
    }
}

/// Drives a client connection in a task that ends when the connection does.
fn drive<F: Future + Send + 'static>(connection: F) -> JoinHandle<()> {
    tokio::spawn(async move {
        let _ = connection.await;
    })
}
