//! The transport under the control API's gRPC channel: TCP, then TLS with our own rustls
//! configuration (`smi_tls::Mtls::control_client`), so that the control is verified by its
//! SPIFFE ID rather than by the DNS name or IP that was dialled. Each channel dials one resolved
//! address (`failover` chooses it).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::Uri;
use tower_service::Service;

/// Connects every channel connection to `addr` with `config`.
#[derive(Clone, Debug)]
pub(super) struct ControlConnector {
    /// The configured host (name or IP), sent as the TLS server name.
    pub host: String,
    /// One address `host` resolved to.
    pub addr: SocketAddr,
    pub config: Arc<ClientConfig>,
}

impl Service<Uri> for ControlConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let name = ServerName::try_from(this.host.clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let tcp = TcpStream::connect(this.addr).await?;
            tcp.set_nodelay(true)?;
            let tls = TlsConnector::from(this.config).connect(name, tcp).await?;
            Ok(TokioIo::new(tls))
        })
    }
}
