//! axum behind the mesh, called with a hyper-style client: `cargo run -p smi-examples --bin axum-hyper`.
//!
//! The server is an ordinary axum `Router` served by `axum::serve` on a `MeshListener`: mTLS, and
//! the caller's identity as `ConnectInfo<Peer>`; `AuthorizeLayer` enforces the SMI policy. The client is
//! `MeshClient`, a `tower::Service<http::Request<B>>`: `default/reader` may `GET /notes`, nobody
//! may `DELETE`. The control service runs in this process (see `smi_examples::local`).

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use smi_client::{Mesh, MeshClient};
use smi_examples::local::{Error, LocalControl};
use smi_server::{AuthorizeLayer, MeshListener, Peer};

const POLICY: &str = r#"
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: notes-routes, namespace: default}
spec:
  matches:
  - name: read
    pathRegex: /notes
    methods: [GET]
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: readers, namespace: default}
spec:
  destination: {kind: ServiceAccount, name: notes, namespace: default}
  sources:
  - {kind: ServiceAccount, name: reader, namespace: default}
  rules:
  - {kind: HTTPRouteGroup, name: notes-routes, matches: [read]}
"#;

async fn notes(ConnectInfo(peer): ConnectInfo<Peer>) -> String {
    format!("notes for {}\n", peer.identity)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let control = LocalControl::start(POLICY).await?;

    let server = Mesh::start(control.workload("default/notes", &["default/notes"])?).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let _registration = server.register("default/notes", listener.local_addr()?);
    let router = Router::new().route("/notes", get(notes).delete(|| async { "deleted\n" }));
    // Around the whole router, not `Router::layer` (which runs after routing): the router must
    // route the normalized path that was authorized.
    let authorized = tower_layer::Layer::layer(&AuthorizeLayer::new(server.clone()), router);
    let app = Router::new().fallback_service(authorized);
    let listener = MeshListener::new(listener, &server)?;
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<Peer>()).await
    });

    let reader = Mesh::start(
        control
            .workload("default/reader", &[])?
            .calls(["default/notes"]),
    )
    .await?;
    let mut changes = reader.changed();
    while reader.policy().endpoints("default", "notes").is_empty() {
        tokio::time::timeout(std::time::Duration::from_secs(10), changes.changed()).await??;
    }
    let client: MeshClient<Full<Bytes>> = MeshClient::new(reader);
    for method in ["GET", "DELETE"] {
        let request = Request::builder()
            .method(method)
            .uri("http://notes.default/notes")
            .body(Full::new(Bytes::new()))?;
        let response = client.send(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        print!(
            "{method} /notes -> {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    control.stop().await;
    Ok(())
}
