//! The data plane end to end, in one test process: how callers use endpoints. A dead endpoint is
//! skipped, services outside the mesh or unknown to it are clear errors, and connections to an
//! endpoint that left the policy are dropped. A real control service, real workloads (`Mesh`),
//! real mTLS on 127.0.0.1. Every wait is on an event or a condition, bounded by 5 s.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::StatusCode;
use smi_client::{Mesh, MeshClient, OutboundError};
use smi_test_util::bookstore::{self, BUY, WAIT, backend, customer, get};
use smi_test_util::{Control, policy_until};

/// Waits until `mesh` knows exactly `n` endpoints of bookstore-v1.
async fn v1_endpoints(mesh: &Mesh, n: usize) {
    policy_until(mesh, &format!("{n} endpoints of bookstore-v1"), WAIT, |p| {
        p.endpoints("bookstore", "bookstore-v1").len() == n
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_is_skipped_and_unknown_services_are_clear_errors() {
    let mut cluster = bookstore::control(100, 0).await;
    let _v1 = bookstore::v1(&cluster).await;
    // A second bookstore-v1 endpoint whose process is gone: its port refuses connections.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let ghost = cluster
        .mesh("bookstore/bookstore", &["bookstore/bookstore-v1"], &[])
        .await;
    let _ghost_registration = ghost.register("bookstore/bookstore-v1", dead);
    let buyer = customer(&cluster, "bookbuyer/bookbuyer").await;
    v1_endpoints(&buyer, 2).await;
    let client = MeshClient::new(buyer);
    for _ in 0..30 {
        assert_eq!(get(&client, BUY).await.unwrap().0, StatusCode::OK);
    }

    let unknown = get(&client, "http://bookwarehouse.bookwarehouse/")
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, OutboundError::UnknownService(ref s) if s == "bookwarehouse/bookwarehouse"),
        "{unknown}"
    );
    let not_mesh = get(&client, "http://localhost/").await.unwrap_err();
    assert!(
        matches!(not_mesh, OutboundError::NotAService(_)),
        "{not_mesh}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_to_endpoints_that_left_the_policy_are_dropped() {
    let mut cluster = bookstore::control(100, 0).await;
    let v1 = backend(
        &cluster,
        "v1",
        "bookstore/bookstore",
        &["bookstore/bookstore-v1"],
    )
    .await;
    let mut leaving = backend(
        &cluster,
        "leaving",
        "bookstore/bookstore",
        &["bookstore/bookstore-v1"],
    )
    .await;
    let buyer = customer(&cluster, "bookbuyer/bookbuyer").await;
    v1_endpoints(&buyer, 2).await;
    let client = MeshClient::new(buyer.clone());
    // Until both endpoints have served (p2c picks at random).
    let mut served = std::collections::HashSet::new();
    tokio::time::timeout(WAIT, async {
        while served.len() < 2 {
            served.insert(get(&client, BUY).await.unwrap().1);
        }
    })
    .await
    .expect("both endpoints serve within 5 s");
    assert_eq!(client.connected_endpoints(), 2);

    leaving.registrations.clear();
    v1_endpoints(&buyer, 1).await;
    for _ in 0..10 {
        assert_eq!(
            get(&client, BUY).await.unwrap(),
            (StatusCode::OK, "v1".to_owned())
        );
    }
    assert_eq!(
        client.connected_endpoints(),
        1,
        "the connection to the endpoint that left"
    );
    assert_eq!(
        buyer.policy().endpoints("bookstore", "bookstore-v1")[0].addr,
        v1.addr
    );
    cluster.shutdown().await;
}
