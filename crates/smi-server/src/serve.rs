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
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tower_service::Service;

use crate::accept::accept;
use crate::peer::Peer;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long a connection whose peer lost access may finish the requests it has in flight.
const REVOKED_GRACE: std::time::Duration = std::time::Duration::from_millis(300);

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
    let mut connections = std::pin::pin!(accept(listener, mesh));
    while let Some(connection) = connections.next().await {
        let stream = connection?;
        let addr = stream.peer().addr;
        let service = WithPeer {
            inner: service.clone(),
            peer: stream.peer().clone(),
        };
        let mesh = mesh.clone();
        tokio::spawn(async move {
            let peer = service.peer.clone();
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(service),
            );
            // Requests are authorized one by one; a long-lived stream was authorized when it
            // started. When a policy change takes away the last TrafficTarget that let the peer
            // reach us, the connection (with its streams) is closed. A peer that never had one
            // keeps its connection: its requests get 403s, not resets.
            let admits = || {
                mesh.policy()
                    .snapshot
                    .admits_any(mesh.identity(), &peer.identity)
            };
            let mut admitted = admits();
            let mut changes = mesh.changed();
            tokio::pin!(connection);
            loop {
                tokio::select! {
                    result = &mut connection => {
                        if let Err(e) = result {
                            tracing::debug!(%addr, error = %e, "inbound connection ended with an error");
                        }
                        return;
                    }
                    changed = changes.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let now = admits();
                        if admitted && !now {
                            tracing::info!(peer = %peer.identity, "no longer allowed; closing its connection");
                            // GOAWAY first: requests already on the wire are still answered
                            // (403 from here on), the client opens a new connection for the
                            // next ones; streams still open after the grace are cut.
                            connection.as_mut().graceful_shutdown();
                            let _ = tokio::time::timeout(REVOKED_GRACE, &mut connection).await;
                            return;
                        }
                        admitted = now;
                    }
                }
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
