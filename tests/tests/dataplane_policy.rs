//! The data plane end to end, in one test process: what policy allows, denies and splits. A real
//! control service, real workloads (`Mesh`), real mTLS on 127.0.0.1, policy changed by writing
//! files. Every wait is on an event or a condition, bounded by 5 s.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use smi_client::MeshClient;
use smi_test_util::Control;
use smi_test_util::bookstore::{
    self, BUY, VERSIONS, backends, caller, customer, get, split, until_response, with_endpoints,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_allows_the_buyer_and_denies_the_thief_over_mtls() {
    let mut cluster = bookstore::control(50, 50).await;
    let _bookstores = backends(&cluster).await;
    let buyer = customer(&cluster, "bookbuyer/bookbuyer").await;
    let thief = customer(&cluster, "bookthief/bookthief").await;
    with_endpoints(&buyer, VERSIONS).await;
    with_endpoints(&thief, VERSIONS).await;

    let buyer = MeshClient::new(buyer);
    let thief = MeshClient::new(thief);
    let mut backends = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let (status, backend) = get(&buyer, BUY).await.unwrap();
        assert_eq!(status, StatusCode::OK);
        backends.insert(backend);
        assert_eq!(get(&thief, BUY).await.unwrap().0, StatusCode::FORBIDDEN);
    }
    // 50/50 over 40 requests: both versions answer (the chance of not is about 2e-12).
    assert_eq!(backends.len(), 2, "{backends:?}");
    // A route the policy does not list is denied to the buyer too.
    assert_eq!(
        get(&buyer, "http://bookstore.bookstore/admin")
            .await
            .unwrap()
            .0,
        StatusCode::FORBIDDEN
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_change_shifts_traffic_within_a_second() {
    let mut cluster = bookstore::control(100, 0).await;
    let _bookstores = backends(&cluster).await;
    let buyer = caller(&cluster, "bookbuyer/bookbuyer", VERSIONS).await;
    // The mesh moves into the client, as in the bookstore demo: it must keep the policy watch
    // running (smi_client::KeepAlive), or the change below never arrives.
    let client = MeshClient::new(buyer);
    until_response(&client, BUY, |(_, b)| b == "bookstore-v1").await;
    for _ in 0..20 {
        assert_eq!(get(&client, BUY).await.unwrap().1, "bookstore-v1");
    }

    cluster.write_policy("split.yaml", &split(0, 100));
    let took = until_response(&client, BUY, |(_, b)| b == "bookstore-v2").await;
    assert!(took < Duration::from_secs(1), "the shift took {took:?}");
    for _ in 0..20 {
        assert_eq!(get(&client, BUY).await.unwrap().1, "bookstore-v2");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_grpc_call_gets_permission_denied() {
    let mut cluster = bookstore::control(50, 50).await;
    let _bookstores = backends(&cluster).await;
    let thief = caller(&cluster, "bookthief/bookthief", VERSIONS).await;
    let client: MeshClient<Full<Bytes>> = MeshClient::new(thief);
    let request = Request::post("http://bookstore.bookstore/bookstore.Shop/Buy")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.send(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "7");
    assert!(
        response.headers()["grpc-message"]
            .to_str()
            .unwrap()
            .contains("denied")
    );
    cluster.shutdown().await;
}
