//! Serving a tower service (an axum `Router`, tonic `Routes`, any hyper-compatible service) on a
//! TCP listener with mesh mTLS: client certificate required and verified against the trust
//! bundle, the peer's SPIFFE ID put in each request's extensions as [`Peer`], HTTP/1.1 or HTTP/2
//! (detected from the first bytes). Each connection runs in its own task, bounded by the
//! [`ServeOptions`] timeouts and closed when policy takes the peer's access away
//! (`crate::connection`).
//!
//! [`Peer`]: crate::Peer

use std::convert::Infallible;
use std::io;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use smi_client::Handles;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tower_service::Service;

use crate::accept::accept_with;
use crate::connection::{self, Context};
use crate::in_flight::{Activity, WithPeer};
use crate::options::ServeOptions;
use crate::upgrade;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves `service` with the default [`ServeOptions`] until the listener fails, on a mesh's
/// handles (pass `&mesh`). Wrap the service in [`crate::AuthorizeLayer`] to enforce SMI policy.
pub async fn serve<S, B>(
    listener: TcpListener,
    handles: impl Into<Handles>,
    service: S,
) -> io::Result<()>
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
    serve_with(listener, handles, service, &ServeOptions::default()).await
}

/// Serves `service` until the listener fails, with `options`' timeouts and limits.
pub async fn serve_with<S, B>(
    listener: TcpListener,
    handles: impl Into<Handles>,
    service: S,
    options: &ServeOptions,
) -> io::Result<()>
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
    let handles = handles.into();
    let builder = Arc::new(builder(options));
    let mut connections = std::pin::pin!(accept_with(listener, &handles, options));
    while let Some(connection) = connections.next().await {
        let stream = connection?;
        let peer = stream.peer().clone();
        let activity = Arc::new(Activity::default());
        let service = TowerToHyperService::new(WithPeer {
            inner: service.clone(),
            peer: peer.clone(),
            activity: activity.clone(),
            upgrades: options.upgrades,
        });
        let mut cx = Context {
            policy: handles.policy.clone(),
            peer,
            activity,
            header_read_timeout: options.header_read_timeout,
            idle_timeout: options.idle_timeout,
            upgrades: None,
        };
        let builder = builder.clone();
        if !options.upgrades {
            // Only hyper uses this stream, so its flushes may be coalesced; an upgraded stream
            // goes to the application, which may not poll it again after a flush.
            let stream = stream.coalescing();
            tokio::spawn(async move {
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                connection::run(connection, auto::Connection::graceful_shutdown, cx).await;
            });
            continue;
        }
        let (stream, socket) = match upgrade::track(stream) {
            Ok(tracked) => tracked,
            Err(e) => {
                tracing::warn!(peer = %cx.peer.identity, error = %e, "no handle on the socket for upgrades; closing the connection");
                continue;
            }
        };
        cx.upgrades = Some(socket);
        tokio::spawn(async move {
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            connection::run(
                connection,
                auto::UpgradeableConnection::graceful_shutdown,
                cx,
            )
            .await;
        });
    }
    Ok(())
}

/// One builder for all of a listener's connections (each connection borrows it).
fn builder(options: &ServeOptions) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let mut http2 = builder.http2();
    http2
        .timer(TokioTimer::new())
        .keep_alive_interval(options.http2_keep_alive_interval)
        .keep_alive_timeout(options.http2_keep_alive_timeout);
    if options.upgrades {
        http2.enable_connect_protocol();
    }
    builder
}
