//! Edge telemetry over real mTLS on loopback, on fixed handles (no control service): each side
//! names its peer from the peer's certificate (the workload extension the CA writes), and the
//! server's `/metrics` carries Istio's schema for Flagger.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use smi_client::mesh::Endpoint;
use smi_client::metrics::{Direction, SeriesSnapshot};
use smi_client::test_util::{TestCa, policy_state};
use smi_client::{Handles, MeshClient};
use smi_server::AuthorizeLayer;
use tokio::net::TcpListener;
use tower::{Layer, service_fn};

const ACCESS: &str = include_str!("../../../examples/bookstore/policy/bookstore-access.yaml");

/// Every request for `bookstore.bookstore` goes to `bookstore-v1`.
const SPLIT: &str = "
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: split, namespace: bookstore}
spec:
  service: bookstore.bookstore.svc.cluster.local
  backends:
  - {service: bookstore-v1, weight: 100}
";

const STORE_POD: &str = "bookstore-v1-5d8f7c9b4-x2x7q";
const BUYER_POD: &str = "bookbuyer-7c4d9f8b5-kq2zt";

async fn buy(client: &MeshClient<Empty<Bytes>>) -> StatusCode {
    let request = Request::get("http://bookstore.bookstore/buy-a-book/new")
        .body(Empty::new())
        .unwrap();
    let response = client.send(request).await.unwrap();
    let status = response.status();
    response.into_body().collect().await.unwrap();
    status
}

fn only(series: &[SeriesSnapshot], what: impl Fn(&SeriesSnapshot) -> bool) -> &SeriesSnapshot {
    let found: Vec<_> = series.iter().filter(|s| what(s)).collect();
    assert_eq!(found.len(), 1, "{series:#?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_side_names_its_peer_from_the_peers_certificate() {
    let ca = TestCa::new();
    let store = ca.workload_credentials(
        "bookstore/bookstore",
        &["bookstore/bookstore", "bookstore/bookstore-v1"],
        "bookstore-v1",
        STORE_POD,
    );
    let buyer = ca.workload_credentials("bookbuyer/bookbuyer", &[], "bookbuyer", BUYER_POD);
    // A caller whose certificate names no workload.
    let thief = ca.credentials("bookthief/bookthief", &[]);

    let server = Handles::for_test(&store, policy_state(1, ACCESS, &[]));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = service_fn(|_: Request<hyper::body::Incoming>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"book\n"))))
    });
    let authorized = AuthorizeLayer::new(server.clone()).layer(app);
    let serving = tokio::spawn(smi_server::serve(listener, server.clone(), authorized));

    let endpoints = [(
        "bookstore/bookstore-v1",
        vec![Endpoint {
            addr,
            identity: store.spiffe_id().clone(),
        }],
    )];
    let policy = format!("{ACCESS}{SPLIT}");
    let buyer_handles = Handles::for_test(&buyer, policy_state(1, &policy, &endpoints));
    let thief_handles = Handles::for_test(&thief, policy_state(1, &policy, &endpoints));
    let (buyer_client, thief_client) = (
        MeshClient::new(buyer_handles.clone()),
        MeshClient::new(thief_handles),
    );
    for _ in 0..3 {
        assert_eq!(buy(&buyer_client).await, StatusCode::OK);
    }
    assert_eq!(buy(&thief_client).await, StatusCode::FORBIDDEN);

    // Inbound: the callers, by the names their certificates carry.
    let inbound = server.metrics.series();
    let bought = only(&inbound, |s| s.status == 200);
    assert_eq!(bought.direction, Direction::Inbound);
    let caller = bought.peer.as_deref().unwrap();
    assert_eq!(
        (caller.identity(), caller.workload(), caller.pod()),
        (
            "spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer",
            "bookbuyer",
            BUYER_POD
        )
    );
    assert_eq!(
        (bought.success, bought.service.as_str()),
        (3, "bookstore/bookstore")
    );
    let refused = only(&inbound, |s| s.status == 403);
    assert_eq!((refused.denied, refused.route.as_str()), (1, "denied"));
    assert_eq!(
        refused.peer.as_deref().unwrap().workload(),
        "",
        "no names in its certificate"
    );

    // Istio's schema, as Flagger queries it.
    let text = server.metrics.prometheus();
    let line = text
        .lines()
        .find(|l| l.starts_with("istio_requests_total{") && l.contains("response_code=\"200\""))
        .unwrap_or_else(|| panic!("no istio series:\n{text}"));
    for label in [
        "reporter=\"destination\"",
        "destination_workload=\"bookstore-v1\"",
        "destination_workload_namespace=\"bookstore\"",
        "source_workload=\"bookbuyer\"",
        "source_workload_namespace=\"bookbuyer\"",
        "source_principal=\"spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer\"",
        "destination_principal=\"spiffe://cluster.local/ns/bookstore/sa/bookstore\"",
        "destination_service_name=\"bookstore\"",
        "request_protocol=\"http\"",
        "connection_security_policy=\"mutual_tls\"",
    ] {
        assert!(line.contains(label), "{label} in {line}");
    }
    assert!(line.ends_with(" 3"), "{line}");
    assert!(
        text.contains("source_workload=\"unknown\",source_workload_namespace=\"bookthief\""),
        "{text}"
    );

    // Outbound: the endpoint, by its server certificate; the apex and the split's backend.
    let outbound = buyer_handles.metrics.series();
    let sent = only(&outbound, |s| s.route.as_str() == "sent");
    assert_eq!(sent.direction, Direction::Outbound);
    let called = sent.peer.as_deref().unwrap();
    assert_eq!(
        (called.workload(), called.pod()),
        ("bookstore-v1", STORE_POD)
    );
    assert_eq!(
        (sent.service.as_str(), sent.backend.as_str(), sent.success),
        ("bookstore/bookstore", "bookstore/bookstore-v1", 3)
    );
    serving.abort();
}
