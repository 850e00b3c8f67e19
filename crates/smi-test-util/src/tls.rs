//! Clients that speak TLS to a meshed server by hand (no mesh client in between): for tests that
//! write raw bytes, choose the ALPN, or hold a connection open to see it closed.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use smi_client::Mesh;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// How long an echo may take to come back.
const ECHO: Duration = Duration::from_secs(20);

/// `config` offering only the ALPN `protocol` (`h2`, `http/1.1`).
pub fn with_alpn(config: &ClientConfig, protocol: &[u8]) -> Arc<ClientConfig> {
    let mut config = config.clone();
    config.alpn_protocols = vec![protocol.to_vec()];
    Arc::new(config)
}

/// A TLS connection to `addr` with `config` (the server is named by its IP address; the mesh's
/// verifier checks the SPIFFE ID instead).
pub async fn connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

/// A mesh TLS connection to the echo server at `addr`, with `mesh`'s certificate, that echoed a
/// line back.
pub async fn tcp_echo(mesh: &Mesh, addr: SocketAddr) -> io::Result<TlsStream<TcpStream>> {
    let mut tls = connect(addr, mesh.client_tls()).await?;
    echoes(&mut tls).await?;
    Ok(tls)
}

/// Writes a line and reads it back; an error if none comes back within 20 s.
pub async fn echoes(tls: &mut TlsStream<TcpStream>) -> io::Result<()> {
    tls.write_all(b"ping\n").await?;
    let mut buf = [0u8; 5];
    tokio::time::timeout(ECHO, tls.read_exact(&mut buf))
        .await
        .map_err(|_| io::Error::other("no echo"))??;
    assert_eq!(&buf, b"ping\n");
    Ok(())
}
