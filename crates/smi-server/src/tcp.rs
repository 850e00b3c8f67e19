//! Meshed TCP: each accepted mTLS connection is authorized as TCP traffic to the listener's port
//! (TrafficTargets with TCPRoute rules), and re-checked on every policy change: a connection that
//! is no longer allowed is closed.

use std::future::Future;
use std::io;

use smi_client::{Handles, PolicyHandle};
use smi_core::policy::Request;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;

use crate::accept::{MeshStream, accept_with};
use crate::options::ServeOptions;
use crate::peer::Peer;

/// Serves TCP connections with `handler` (one task each) until the listener fails, with the
/// default [`ServeOptions`].
pub async fn serve_tcp<F, Fut>(
    listener: TcpListener,
    handles: impl Into<Handles>,
    handler: F,
) -> io::Result<()>
where
    F: Fn(MeshStream, Peer) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    serve_tcp_with(listener, handles, &ServeOptions::default(), handler).await
}

/// [`serve_tcp`] with `options`' handshake timeout and connection limits (the HTTP timeouts
/// do not apply: the bytes are the handler's).
pub async fn serve_tcp_with<F, Fut>(
    listener: TcpListener,
    handles: impl Into<Handles>,
    options: &ServeOptions,
    handler: F,
) -> io::Result<()>
where
    F: Fn(MeshStream, Peer) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let handles = handles.into();
    let policy = handles.policy.clone();
    let mut connections = std::pin::pin!(accept_with(listener, handles, options));
    while let Some(connection) = connections.next().await {
        let stream = connection?;
        let peer = stream.peer().clone();
        let local = peer.local;
        if !allowed(&policy, &peer) {
            tracing::debug!(peer = %peer.identity, port = local.port(), "TCP connection denied");
            continue;
        }
        let (policy, handler) = (policy.clone(), handler.clone());
        tokio::spawn(async move {
            let mut changes = policy.changed();
            let serving = handler(stream, peer.clone());
            tokio::pin!(serving);
            loop {
                tokio::select! {
                    () = &mut serving => return,
                    changed = changes.changed() => {
                        if changed.is_err() || !allowed(&policy, &peer) {
                            tracing::info!(peer = %peer.identity, port = local.port(), "TCP connection no longer allowed; closing");
                            return;
                        }
                    }
                }
            }
        });
    }
    Ok(())
}

fn allowed(policy: &PolicyHandle, peer: &Peer) -> bool {
    policy
        .load()
        .snapshot
        .authorize(
            policy.identity(),
            Some(&peer.identity),
            &Request::tcp(Some(peer.local.port())),
        )
        .is_ok()
}
