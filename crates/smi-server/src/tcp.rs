//! Meshed TCP: each accepted mTLS connection is authorized as TCP traffic to the listener's port
//! (TrafficTargets with TCPRoute rules), and re-checked on every policy change: a connection that
//! is no longer allowed is closed.

use std::future::Future;
use std::io;

use smi_client::Mesh;
use smi_client::tls::peer_spiffe_id;
use smi_core::policy::Request;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_stream::StreamExt;

use crate::peer::Peer;
use crate::tls::incoming;

/// Serves TCP connections with `handler` (one task each) until the listener fails.
pub async fn serve_tcp<F, Fut>(listener: TcpListener, mesh: &Mesh, handler: F) -> io::Result<()>
where
    F: Fn(TlsStream<TcpStream>, Peer) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
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
        let peer = Peer {
            identity,
            addr,
            local,
        };
        if !allowed(mesh, &peer) {
            tracing::debug!(peer = %peer.identity, port = local.port(), "TCP connection denied");
            continue;
        }
        let (mesh, handler) = (mesh.clone(), handler.clone());
        tokio::spawn(async move {
            let mut changes = mesh.changed();
            let serving = handler(tls, peer.clone());
            tokio::pin!(serving);
            loop {
                tokio::select! {
                    () = &mut serving => return,
                    changed = changes.changed() => {
                        if changed.is_err() || !allowed(&mesh, &peer) {
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

fn allowed(mesh: &Mesh, peer: &Peer) -> bool {
    mesh.policy()
        .snapshot
        .authorize(
            mesh.identity(),
            Some(&peer.identity),
            &Request::tcp(Some(peer.local.port())),
        )
        .is_ok()
}
