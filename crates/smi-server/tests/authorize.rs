//! `AuthorizeLayer` on fixed handles (no control service, no network): the answers SMI policy
//! gives, what the application receives, revocation, and the metrics both directions share.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use smi_client::Handles;
use smi_client::test_util::{TestCa, policy_state, revoke};
use smi_core::SpiffeId;
use smi_server::{AuthorizeLayer, Peer};
use tower::{Layer, ServiceExt, service_fn};

const POLICY: &str = include_str!("../../../examples/bookstore/policy/bookstore-access.yaml");

fn id(account: &str) -> SpiffeId {
    format!("spiffe://cluster.local/ns/{account}/sa/{}", account)
        .parse()
        .unwrap()
}

struct Fixture {
    handles: Handles,
}

impl Fixture {
    fn new() -> Self {
        let ca = TestCa::new();
        let store = ca.credentials("bookstore/bookstore", &["bookstore/bookstore"]);
        Self {
            handles: Handles::for_test(&store, policy_state(1, POLICY, &[])),
        }
    }

    /// Sends `request` from `caller` (None: no peer at all) through the layer to an application
    /// that answers with the path it received; returns the status and the body.
    async fn call(
        &self,
        caller: Option<&str>,
        request: Request<Empty<Bytes>>,
    ) -> (StatusCode, String) {
        let mut request = request;
        if let Some(caller) = caller {
            let local: SocketAddr = "127.0.0.1:8443".parse().unwrap();
            let peer = Peer::new(id(caller), "127.0.0.1:50000".parse().unwrap(), local);
            request.extensions_mut().insert(peer);
        }
        let app = service_fn(|request: Request<Empty<Bytes>>| async move {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(
                request.uri().path().to_owned(),
            ))))
        });
        let response = AuthorizeLayer::new(self.handles.clone())
            .layer(app)
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

fn get(path: &str) -> Request<Empty<Bytes>> {
    Request::get(format!("http://bookstore.bookstore{path}"))
        .body(Empty::new())
        .unwrap()
}

#[tokio::test]
async fn the_listed_source_is_allowed_and_everyone_else_is_denied() {
    let fixture = Fixture::new();
    assert_eq!(
        fixture
            .call(Some("bookbuyer"), get("/buy-a-book/new"))
            .await,
        (StatusCode::OK, "/buy-a-book/new".to_owned())
    );
    let (status, body) = fixture
        .call(Some("bookthief"), get("/buy-a-book/new"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("denied by SMI policy"), "{body}");
    // A route the target does not list, and a request without a peer.
    assert_eq!(
        fixture.call(Some("bookbuyer"), get("/admin")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        fixture.call(None, get("/buy-a-book/new")).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn the_application_sees_the_normalized_path_that_was_authorized() {
    let fixture = Fixture::new();
    assert_eq!(
        fixture
            .call(Some("bookbuyer"), get("/x/../buy-a-book/./new"))
            .await,
        (StatusCode::OK, "/buy-a-book/new".to_owned())
    );
    assert_eq!(
        fixture
            .call(Some("bookbuyer"), get("/buy-a-book/new/../../admin"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        fixture
            .call(Some("bookbuyer"), get("/buy-a-book%2Fnew"))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn a_denied_grpc_call_gets_permission_denied_in_the_headers() {
    let fixture = Fixture::new();
    let request = Request::post("http://bookstore.bookstore/books.Store/Buy")
        .header("content-type", "application/grpc")
        .body(Empty::new())
        .unwrap();
    let mut request = request;
    let local: SocketAddr = "127.0.0.1:8443".parse().unwrap();
    request
        .extensions_mut()
        .insert(Peer::new(id("bookthief"), local, local));
    let app = service_fn(|_: Request<Empty<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    });
    let response = AuthorizeLayer::new(fixture.handles.clone())
        .layer(app)
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "gRPC errors travel in grpc-status"
    );
    assert_eq!(response.headers()["grpc-status"], "7");
}

#[tokio::test]
async fn a_policy_change_applies_to_the_next_request_and_revocation_denies_at_once() {
    let fixture = Fixture::new();
    assert_eq!(
        fixture
            .call(Some("bookbuyer"), get("/books-bought"))
            .await
            .0,
        StatusCode::OK
    );
    fixture
        .handles
        .policy
        .set(revoke(policy_state(2, POLICY, &[]), &[id("bookbuyer")]));
    let (status, body) = fixture.call(Some("bookbuyer"), get("/books-bought")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("revoked"), "{body}");
    fixture.handles.policy.set(policy_state(3, "", &[]));
    assert_eq!(
        fixture
            .call(Some("bookbuyer"), get("/books-bought"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn each_answer_is_recorded_as_an_inbound_edge() {
    let fixture = Fixture::new();
    fixture
        .call(Some("bookbuyer"), get("/buy-a-book/new"))
        .await;
    fixture
        .call(Some("bookthief"), get("/buy-a-book/new"))
        .await;
    let text = fixture.handles.metrics.prometheus();
    let store = "spiffe://cluster.local/ns/bookstore/sa/bookstore";
    for (source, route, status) in [
        ("bookbuyer", "bookstore/bookbuyer-access-bookstore", "200"),
        ("bookthief", "denied", "403"),
    ] {
        let line = text
            .lines()
            .find(|l| {
                l.starts_with("smi_requests_total{")
                    && l.contains(&format!("source=\"{}\"", id(source)))
            })
            .unwrap_or_else(|| panic!("no series for {source}:\n{text}"));
        assert!(line.contains(&format!("destination=\"{store}\"")), "{line}");
        assert!(line.contains("direction=\"inbound\""), "{line}");
        assert!(line.contains(route), "{line}");
        assert!(line.contains(&format!("status=\"{status}\"")), "{line}");
        assert!(line.ends_with(" 1"), "{line}");
    }
}
