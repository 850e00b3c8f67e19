//! The data plane end to end, in one test process: `MeshLayer` in front of an existing client
//! sends mesh services through the mesh and everything else to the inner client unchanged. A
//! real control service, real workloads (`Mesh`), real mTLS on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use smi_test_util::bookstore::{self, BUY, caller};
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_layer_sends_mesh_services_through_the_mesh_and_the_rest_to_the_inner_client() {
    use tower_service::Service as _;
    let mut cluster = bookstore::control(100, 0).await;
    let _v1 = bookstore::v1(&cluster).await;
    let buyer = caller(&cluster, "bookbuyer/bookbuyer", &["bookstore-v1"]).await;
    // A plain HTTP server outside the mesh.
    let outside = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let outside_addr = outside.local_addr().unwrap();
    let plain = tokio::spawn(async move {
        axum::serve(outside, Router::new().fallback(|| async { "outside\n" })).await
    });

    let inner = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let mut client = tower_layer::Layer::layer(&smi_client::MeshLayer::new(buyer), inner);
    let mesh_response = client
        .call(Request::get(BUY).body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    assert_eq!(mesh_response.status(), StatusCode::OK);
    assert_eq!(mesh_response.headers()["x-backend"], "bookstore-v1");
    let outside_response = client
        .call(
            Request::get(format!("http://{outside_addr}/"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let body = outside_response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b"outside\n");
    plain.abort();
    cluster.shutdown().await;
}
