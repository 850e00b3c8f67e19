//! `MeshListener`: meshed connections as an `axum::serve::Listener`.
//!
//! ```ignore
//! // Around the whole router (not `Router::layer`, which runs after routing).
//! let app = Router::new().fallback_service(AuthorizeLayer::new(mesh.clone()).layer(router));
//! axum::serve(MeshListener::new(listener, &mesh)?, app.into_make_service_with_connect_info::<Peer>()).await?;
//! ```
//! Handlers take `ConnectInfo<Peer>`; `AuthorizeLayer` reads it as well.

use std::io;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use smi_client::Handles;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;

use crate::accept::{MeshIncoming, MeshStream, accept_with};
use crate::options::ServeOptions;
use crate::peer::Peer;

pub struct MeshListener {
    connections: MeshIncoming,
    /// Our own end, as a `Peer` (axum's listener address type is the peer type).
    local: Peer,
}

impl std::fmt::Debug for MeshListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshListener")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl MeshListener {
    /// The listener with the default [`ServeOptions`].
    pub fn new(listener: TcpListener, handles: impl Into<Handles>) -> io::Result<Self> {
        Self::with_options(listener, handles, &ServeOptions::default())
    }

    /// The listener with `options`' handshake timeout and connection limits. axum serves the
    /// connections with its own hyper builder: the HTTP timeouts and the upgrade refusal of
    /// [`crate::serve_with`] do not apply (axum allows upgrades), nor does its closing of a
    /// peer's connections on revocation; use [`crate::serve_with`] for those.
    pub fn with_options(
        listener: TcpListener,
        handles: impl Into<Handles>,
        options: &ServeOptions,
    ) -> io::Result<Self> {
        let handles = handles.into();
        let local = listener.local_addr()?;
        Ok(Self {
            local: Peer::new(handles.policy.identity().clone(), local, local),
            connections: accept_with(listener, handles, options),
        })
    }
}

impl axum::serve::Listener for MeshListener {
    type Io = MeshStream;
    type Addr = Peer;

    async fn accept(&mut self) -> (MeshStream, Peer) {
        loop {
            match self.connections.next().await {
                Some(Ok(stream)) => {
                    let peer = stream.peer().clone();
                    return (stream, peer);
                }
                Some(Err(e)) => {
                    tracing::error!(error = %e, "accepting failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                // The listener failed for good: accept nothing more.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Peer> {
        Ok(self.local.clone())
    }
}

impl Connected<IncomingStream<'_, MeshListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, MeshListener>) -> Self {
        stream.remote_addr().clone()
    }
}
