//! Workloads that serve: an axum app behind the mesh's authorization, registered as the services
//! it serves, and a TCP echo. Each serves on 127.0.0.1 (any port) until dropped.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;

use axum::Router;
use http::{Request, Response};
use hyper::body::Incoming;
use smi_client::Mesh;
use smi_client::mesh::Registration;
use smi_server::{AuthorizeLayer, ServeOptions};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_service::Service;

use crate::Control;

/// An app served by a workload over mTLS, SMI policy enforced. Clearing `registrations` takes
/// its endpoint out of the policy while it keeps serving.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    pub mesh: Mesh,
    pub registrations: Vec<Registration>,
    serving: JoinHandle<io::Result<()>>,
}

impl Server {
    /// A workload of `identity` (started against `control`) serving `router` behind
    /// [`AuthorizeLayer`], registered as each of `serves` (`ns/name`).
    pub async fn start(
        control: &impl Control,
        identity: &str,
        serves: &[&str],
        router: Router,
    ) -> Server {
        let mesh = control.mesh(identity, serves, &[]).await;
        let app = tower_layer::Layer::layer(&AuthorizeLayer::new(mesh.clone()), router);
        Server::on(mesh, serves, app, ServeOptions::default()).await
    }

    /// `service` served by `mesh` with `options` ([`smi_server::serve_with`]: mTLS, and the
    /// connection-level checks; HTTP authorization only if `service` has [`AuthorizeLayer`]),
    /// registered as each of `serves`.
    pub async fn on<S, B>(mesh: Mesh, serves: &[&str], service: S, options: ServeOptions) -> Server
    where
        S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let listener = bind().await;
        let addr = listener.local_addr().expect("a bound listener's address");
        let registrations = serves.iter().map(|s| mesh.register(s, addr)).collect();
        let serving = {
            let mesh = mesh.clone();
            tokio::spawn(
                async move { smi_server::serve_with(listener, &mesh, service, &options).await },
            )
        };
        Server {
            addr,
            mesh,
            registrations,
            serving,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

/// A TCP echo served by `mesh` ([`smi_server::serve_tcp`]: mTLS, TCPRoute policy enforced at
/// accept and on open connections).
#[derive(Debug)]
pub struct EchoServer {
    pub addr: SocketAddr,
    serving: JoinHandle<io::Result<()>>,
}

impl EchoServer {
    pub async fn start(mesh: &Mesh) -> EchoServer {
        let listener = bind().await;
        let addr = listener.local_addr().expect("a bound listener's address");
        let mesh = mesh.clone();
        let serving = tokio::spawn(async move {
            smi_server::serve_tcp(listener, &mesh, |stream, _peer| async move {
                let (mut read, mut write) = tokio::io::split(stream);
                let _ = tokio::io::copy(&mut read, &mut write).await;
            })
            .await
        });
        EchoServer { addr, serving }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a listener on 127.0.0.1")
}
