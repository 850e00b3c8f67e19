//! The data plane end to end, in one test process: metrics. Both directions are counted, per
//! route and status, and a workload's admin endpoint serves them with its status. A real control
//! service, real workloads (`Mesh`), real mTLS on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::StatusCode;
use smi_client::MeshClient;
use smi_test_util::admin;
use smi_test_util::bookstore::{self, BUY, customer, get, with_endpoints};
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_both_directions_and_the_admin_endpoint_serves_them() {
    let mut cluster = bookstore::control(100, 0).await;
    let v1 = bookstore::v1(&cluster).await;
    let buyer = customer(&cluster, "bookbuyer/bookbuyer").await;
    let thief = customer(&cluster, "bookthief/bookthief").await;
    with_endpoints(&buyer, &["bookstore-v1"]).await;
    with_endpoints(&thief, &["bookstore-v1"]).await;
    let (buyer_client, thief_client) = (MeshClient::new(buyer.clone()), MeshClient::new(thief));
    for _ in 0..3 {
        assert_eq!(get(&buyer_client, BUY).await.unwrap().0, StatusCode::OK);
        assert_eq!(
            get(&thief_client, BUY).await.unwrap().0,
            StatusCode::FORBIDDEN
        );
    }

    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let serving = tokio::spawn(smi_server::serve_admin(admin, v1.mesh.clone()));
    let (status, inbound) = admin::get_text(admin_addr, "/metrics").await;
    assert_eq!(status, StatusCode::OK, "{inbound}");
    let allowed = "smi_requests_total{destination=\"spiffe://cluster.local/ns/bookstore/sa/bookstore\",direction=\"inbound\",route=\"TrafficTarget bookstore/bookbuyer-access-bookstore rule 0 (HTTPRouteGroup bookstore-service-routes) match buy-a-book\",source=\"spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer\",status=\"200\"} 3";
    assert!(inbound.contains(allowed), "{inbound}");
    assert!(inbound.contains("route=\"denied\",source=\"spiffe://cluster.local/ns/bookthief/sa/bookthief\",status=\"403\"} 3"), "{inbound}");
    assert!(
        inbound.contains("smi_request_duration_seconds_bucket{"),
        "{inbound}"
    );
    let (_, status) = admin::get_text(admin_addr, "/status").await;
    assert!(
        status.contains("ready: true") && status.contains("connected: true"),
        "{status}"
    );

    let outbound = buyer.metrics().prometheus();
    assert!(outbound.contains("destination=\"bookstore/bookstore-v1\",direction=\"outbound\",route=\"sent\",source=\"spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer\",status=\"200\"} 3"), "{outbound}");
    serving.abort();
    cluster.shutdown().await;
}
