//! The outbound stack on fixed handles, against real mTLS servers on loopback (no control
//! service): split and balancing, skipping endpoints that cannot be reached or present another
//! identity, retrying what was never sent, revocation, and waiting for endpoints.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use smi_client::control::Credentials;
use smi_client::mesh::Endpoint;
use smi_client::test_util::{TestCa, policy_state, revoke, with_listed_calls};
use smi_client::{Handles, MeshClient, OutboundError};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;

/// `bookstore.bookstore` split between `bookstore-v1` and `bookstore-v2` by these weights.
fn split(v1: u32, v2: u32) -> String {
    format!(
        "
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {{name: split, namespace: bookstore}}
spec:
  service: bookstore.bookstore.svc.cluster.local
  backends:
  - {{service: bookstore-v1, weight: {v1}}}
  - {{service: bookstore-v2, weight: {v2}}}
"
    )
}

/// A meshed HTTP server answering every request with its name; counts the connections it took.
struct Backend {
    endpoint: Endpoint,
    connections: Arc<AtomicUsize>,
}

impl Backend {
    /// Serves as `credentials`; with `close_after_response`, each connection is shut down
    /// gracefully (HTTP/2 GOAWAY) right after its first response: the client's pooled
    /// connection then goes away under the next request.
    async fn start(
        name: &'static str,
        credentials: &Credentials,
        close_after_response: bool,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(credentials.server_config().unwrap()));
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                counted.fetch_add(1, Ordering::Relaxed);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let answered = Arc::new(Notify::new());
                    let notify = answered.clone();
                    let service = service_fn(move |_: Request<hyper::body::Incoming>| {
                        notify.notify_one();
                        async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(name)))) }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let mut connection =
                        std::pin::pin!(builder.serve_connection(TokioIo::new(tls), service));
                    if close_after_response {
                        tokio::select! {
                            _ = &mut connection => return,
                            () = answered.notified() => connection.as_mut().graceful_shutdown(),
                        }
                    }
                    let _ = connection.await;
                });
            }
        });
        Self {
            endpoint: Endpoint {
                addr,
                identity: credentials.spiffe_id().clone(),
            },
            connections,
        }
    }
}

struct Fixture {
    ca: TestCa,
    store: Credentials,
    buyer: Credentials,
}

impl Fixture {
    fn new() -> Self {
        let ca = TestCa::new();
        Self {
            store: ca.credentials("bookstore/bookstore", &["bookstore/bookstore"]),
            buyer: ca.credentials("bookbuyer/bookbuyer", &[]),
            ca,
        }
    }

    fn client(
        &self,
        yaml: &str,
        endpoints: &[(&str, Vec<Endpoint>)],
    ) -> (Handles, MeshClient<Empty<Bytes>>) {
        let handles = Handles::for_test(&self.buyer, policy_state(1, yaml, endpoints));
        let client = MeshClient::new(handles.clone());
        (handles, client)
    }
}

async fn get(client: &MeshClient<Empty<Bytes>>, authority: &str) -> Result<String, OutboundError> {
    let request = Request::get(format!("http://{authority}/"))
        .body(Empty::new())
        .unwrap();
    let response = client.send(request).await?;
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Sends `n` requests and counts the answers by backend name.
async fn tally(
    client: &MeshClient<Empty<Bytes>>,
    authority: &str,
    n: usize,
) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for _ in 0..n {
        *seen
            .entry(get(client, authority).await.unwrap())
            .or_default() += 1;
    }
    seen
}

#[tokio::test]
async fn the_split_picks_the_backend_and_a_change_shifts_traffic() {
    let f = Fixture::new();
    let v1 = Backend::start("v1", &f.store, false).await;
    let v2 = Backend::start("v2", &f.store, false).await;
    let endpoints = [
        ("bookstore/bookstore-v1", vec![v1.endpoint.clone()]),
        ("bookstore/bookstore-v2", vec![v2.endpoint.clone()]),
    ];
    let (handles, client) = f.client(&split(100, 0), &endpoints);
    assert_eq!(
        tally(&client, "bookstore.bookstore", 20).await,
        HashMap::from([("v1".into(), 20)])
    );
    handles
        .policy
        .set(policy_state(2, &split(0, 100), &endpoints));
    assert_eq!(
        tally(&client, "bookstore.bookstore", 20).await,
        HashMap::from([("v2".into(), 20)])
    );
}

#[tokio::test]
async fn requests_are_balanced_over_the_endpoints_of_a_service() {
    let f = Fixture::new();
    let a = Backend::start("a", &f.store, false).await;
    let b = Backend::start("b", &f.store, false).await;
    let (_handles, client) = f.client(
        "",
        &[(
            "bookstore/bookstore",
            vec![a.endpoint.clone(), b.endpoint.clone()],
        )],
    );
    let seen = tally(&client, "bookstore.bookstore:80", 200).await;
    // Sequential requests leave both endpoints idle, so each pick is a fair coin: far from 20%
    // only with a probability below 1e-15.
    for name in ["a", "b"] {
        assert!(seen.get(name).copied().unwrap_or(0) > 40, "{seen:?}");
    }
    assert_eq!(client.connected_endpoints(), 2);
}

#[tokio::test]
async fn unreachable_endpoints_and_impostors_are_skipped_before_anything_is_sent() {
    let f = Fixture::new();
    let live = Backend::start("live", &f.store, false).await;
    // An address nothing listens on, and a server presenting another identity than its
    // endpoint is bound to (the thief serving under the bookstore's name).
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let thief = Backend::start(
        "thief",
        &f.ca.credentials("bookthief/bookthief", &[]),
        false,
    )
    .await;
    let endpoints = vec![
        live.endpoint.clone(),
        Endpoint {
            addr: dead,
            identity: f.store.spiffe_id().clone(),
        },
        Endpoint {
            addr: thief.endpoint.addr,
            identity: f.store.spiffe_id().clone(),
        },
    ];
    let (_handles, client) = f.client("", &[("bookstore/bookstore", endpoints)]);
    assert_eq!(
        tally(&client, "bookstore.bookstore", 30).await,
        HashMap::from([("live".into(), 30)])
    );
    // With only the impostor left, the error says who it was.
    let impostor = vec![Endpoint {
        addr: thief.endpoint.addr,
        identity: f.store.spiffe_id().clone(),
    }];
    let (_handles, client) = f.client("", &[("bookstore/bookstore", impostor)]);
    let error = get(&client, "bookstore.bookstore").await.unwrap_err();
    assert!(
        matches!(error, OutboundError::IdentityMismatch { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn connections_going_away_under_concurrent_requests_lose_none() {
    let f = Fixture::new();
    let closing = Backend::start("closing", &f.store, true).await;
    let (_handles, client) = f.client(
        "",
        &[("bookstore/bookstore", vec![closing.endpoint.clone()])],
    );
    // Each connection serves one response and goes away (GOAWAY) while other requests are
    // about to use it: each must find a connection that takes it (a new one, or, when the
    // GOAWAY races the request, the same request sent again: `retry.rs`).
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            tally(&client, "bookstore.bookstore", 25).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), HashMap::from([("closing".into(), 25)]));
    }
    assert!(closing.connections.load(Ordering::Relaxed) >= 2);
}

#[tokio::test]
async fn revoked_identities_are_never_sent_anything() {
    let f = Fixture::new();
    let store = Backend::start("store", &f.store, false).await;
    let endpoints = [("bookstore/bookstore", vec![store.endpoint.clone()])];
    let (handles, client) = f.client("", &endpoints);
    assert_eq!(get(&client, "bookstore.bookstore").await.unwrap(), "store");
    handles.policy.set(revoke(
        policy_state(2, "", &endpoints),
        &[f.store.spiffe_id().clone()],
    ));
    let error = get(&client, "bookstore.bookstore").await.unwrap_err();
    assert!(matches!(error, OutboundError::Revoked(_)), "{error}");
    // The connection to it was dropped with the policy change.
    assert_eq!(client.connected_endpoints(), 0);

    // Beside a live endpoint, a revoked one is skipped by the balancer: it gets no connection.
    let other = f.ca.credentials("bookstore/bookstore-v2", &[]);
    let live = Backend::start("live", &other, false).await;
    let revoked = Backend::start("revoked", &f.store, false).await;
    let both = [(
        "bookstore/bookstore",
        vec![revoked.endpoint.clone(), live.endpoint.clone()],
    )];
    handles.policy.set(revoke(
        policy_state(3, "", &both),
        &[f.store.spiffe_id().clone()],
    ));
    assert_eq!(
        tally(&client, "bookstore.bookstore", 20).await,
        HashMap::from([("live".into(), 20)])
    );
    assert_eq!(revoked.connections.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_request_waits_for_endpoints_that_have_not_arrived_yet() {
    let f = Fixture::new();
    let store = Backend::start("store", &f.store, false).await;
    let (handles, client) = f.client("", &[("bookstore/bookstore", Vec::new())]);
    // Without a wait, the error is immediate.
    let impatient = client.clone().endpoint_wait(Duration::ZERO);
    let error = get(&impatient, "bookstore.bookstore").await.unwrap_err();
    assert!(matches!(error, OutboundError::NoEndpoints(_)), "{error}");
    // With the default wait, the request goes once the registration reaches the policy. Polled
    // once first: it routes, finds no endpoints and waits, before the update arrives.
    let mut waiting = std::pin::pin!(get(&client, "bookstore.bookstore"));
    let first = std::future::poll_fn(|cx| Poll::Ready(waiting.as_mut().poll(cx))).await;
    assert!(first.is_pending(), "{first:?}");
    handles.policy.set(policy_state(
        2,
        "",
        &[("bookstore/bookstore", vec![store.endpoint.clone()])],
    ));
    let answer = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap();
    assert_eq!(answer.unwrap(), "store");
}

#[tokio::test(start_paused = true)]
async fn the_wait_for_endpoints_is_bounded() {
    let f = Fixture::new();
    let (_handles, client) = f.client("", &[]);
    let client = client.endpoint_wait(Duration::from_secs(2));
    let started = tokio::time::Instant::now();
    let error = get(&client, "bookstore.bookstore").await.unwrap_err();
    assert!(matches!(error, OutboundError::UnknownService(_)), "{error}");
    assert_eq!(started.elapsed(), Duration::from_secs(2));

    // A workload that lists its calls has every one of them in its view: a service it lacks is
    // one it does not call, refused at once.
    let (handles, client) = f.client("", &[]);
    handles
        .policy
        .set(with_listed_calls(policy_state(2, "", &[])));
    let started = tokio::time::Instant::now();
    let error = get(&client, "bookwarehouse.bookwarehouse")
        .await
        .unwrap_err();
    assert!(matches!(error, OutboundError::UnknownService(_)), "{error}");
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test]
async fn each_request_is_recorded_as_an_outbound_edge_to_its_backend() {
    let f = Fixture::new();
    let v1 = Backend::start("v1", &f.store, false).await;
    let (handles, client) = f.client(
        &split(100, 0),
        &[("bookstore/bookstore-v1", vec![v1.endpoint.clone()])],
    );
    get(&client, "bookstore.bookstore").await.unwrap();
    let text = handles.metrics.prometheus();
    let line = text
        .lines()
        .find(|l| l.starts_with("smi_requests_total{"))
        .unwrap_or_else(|| panic!("no series:\n{text}"));
    for label in [
        "destination=\"bookstore/bookstore-v1\"",
        "direction=\"outbound\"",
        "route=\"sent\"",
        "source=\"spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer\"",
        "status=\"200\"",
    ] {
        assert!(line.contains(label), "{label} in {line}");
    }
}
