//! A meshed server's connection limits (`smi_server::ServeOptions::max_connections_per_peer`),
//! end to end in one test process: a real control service, real workloads, real mTLS on
//! 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use smi_client::Mesh;
use smi_server::ServeOptions;
use smi_test_util::Server;
use smi_test_util::bookstore::Shop;
use smi_test_util::raw::{Client, WAIT, mtls, until_closed};
use tokio::io::AsyncWriteExt;

/// The bookstore's workload serving `/` (200 "ok") with `options`.
async fn serve(setup: &Shop, options: ServeOptions) -> Server {
    let app = Router::new().route("/", get(|| async { "ok" }));
    Server::on(setup.server.clone(), &[], app, options).await
}

/// Whether `mesh` gets a 200 on a new HTTP/1.1 connection (the client stays open).
async fn served_on_a_new_connection(mesh: &Mesh, addr: SocketAddr) -> Option<Client> {
    let mut client = Client::open(mesh, addr, false).await;
    match client.get("/").await {
        Ok((StatusCode::OK, _)) => Some(client),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_over_its_connection_limit_is_closed_and_other_peers_still_connect() {
    let setup = Shop::start().await;
    let served = serve(&setup, ServeOptions::default().max_connections_per_peer(2)).await;
    let addr = served.addr;
    let first = served_on_a_new_connection(&setup.buyer, addr).await;
    let mut second = served_on_a_new_connection(&setup.buyer, addr).await;
    assert!(
        first.is_some() && second.is_some(),
        "two connections are within the limit"
    );

    // The third completes its handshake and is closed without an answer.
    let mut third = mtls(&setup.buyer, addr, b"http/1.1").await;
    let _ = third
        .write_all(b"GET / HTTP/1.1\r\nhost: bookstore.bookstore\r\n\r\n")
        .await;
    let got = until_closed(&mut third).await;
    assert!(
        got.is_empty(),
        "answered over the limit: {:?}",
        String::from_utf8_lossy(&got)
    );

    // Another identity has slots of its own.
    let thief = served_on_a_new_connection(&setup.thief, addr).await;
    assert!(
        thief.is_some(),
        "another peer is not limited by the buyer's connections"
    );

    // Closing one of the buyer's connections frees its slot (once the server has seen it close).
    drop(first);
    let freed = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(client) = served_on_a_new_connection(&setup.buyer, addr).await {
                return client;
            }
        }
    })
    .await;
    assert!(
        freed.is_ok(),
        "no slot freed within 5 s of closing a connection"
    );
    let second = second.as_mut().unwrap();
    assert_eq!(second.get("/").await.unwrap().0, StatusCode::OK);
    setup.stop().await;
}
