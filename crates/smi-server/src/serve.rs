//! Serving a tower service (an axum `Router`, tonic `Routes`, any hyper-compatible service) on a
//! TCP listener with mesh mTLS: client certificate required and verified against the trust
//! bundle, the peer's SPIFFE ID put in each request's extensions as [`Peer`], HTTP/1.1 or HTTP/2
//! by ALPN.

use std::convert::Infallible;
use std::io;
use std::task::{Context, Poll};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use smi_client::Mesh;
use smi_client::tls::peer_spiffe_id;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tower_service::Service;

use crate::peer::Peer;
use crate::tls::incoming;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves `service` until the listener fails; each connection in its own task. Wrap the service
/// in [`crate::AuthorizeLayer`] to enforce SMI policy.
pub async fn serve<S, B>(listener: TcpListener, mesh: &Mesh, service: S) -> io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let local = listener.local_addr()?;
    let mut connections = incoming(listener, mesh.server_tls());
    while let Some(connection) = connections.next().await {
        let tls = connection?;
        let (tcp, session) = tls.get_ref();
        let addr = tcp.peer_addr().unwrap_or(local);
        let identity = match peer_spiffe_id(session.peer_certificates()) {
            Ok(identity) => identity,
            Err(reason) => {
                tracing::debug!(%addr, %reason, "connection without a usable SPIFFE ID; closing");
                continue;
            }
        };
        let service = WithPeer {
            inner: service.clone(),
            peer: Peer {
                identity,
                addr,
                local,
            },
        };
        tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection_with_upgrades(
                TokioIo::new(tls),
                TowerToHyperService::new(service),
            );
            if let Err(e) = connection.await {
                tracing::debug!(%addr, error = %e, "inbound connection ended with an error");
            }
        });
    }
    Ok(())
}

/// Inserts the connection's [`Peer`] into each request.
#[derive(Clone, Debug)]
struct WithPeer<S> {
    inner: S,
    peer: Peer,
}

impl<S, B> Service<Request<B>> for WithPeer<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        request.extensions_mut().insert(self.peer.clone());
        self.inner.call(request)
    }
}
