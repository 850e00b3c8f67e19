//! Revocation of identities end to end, against real processes on loopback (the control service
//! and a meshed bookstore app, `smi-test-control` and `smi-conformance-app`): after `smictl
//! revoke` (its own code, `smi_control::cli::run`, writing the state directory as the binary
//! does) a revoked identity gets no certificate, servers refuse it and close its connections, and
//! callers send it nothing, within seconds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{Empty, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use smi_client::control::{enroll, renew};
use smi_client::{Mesh, MeshClient, OutboundError};
use smi_core::{ServiceAccount, SpiffeId};
use smi_test_util::tls::{self, echoes, tcp_echo};
use smi_test_util::{
    Control, EchoServer, LiveControl, Process, policy_until, refused, status_until,
};
use smi_tests::TRUST_DOMAIN;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(20);
/// How long a revocation may take to reach a workload, or a server to close a connection.
const REVOKED_WITHIN: Duration = Duration::from_secs(5);
const URL: &str = "http://bookstore-v1.bookstore/buy-a-book/new";

/// The buyer and the thief may both call the bookstore, and reach the warehouse's TCP echo:
/// only revocation tells them apart.
const POLICY: &str = r#"
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: bookstore-routes, namespace: bookstore}
spec:
  matches:
  - {name: everything, pathRegex: /, methods: ["*"]}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: customers, namespace: bookstore}
spec:
  destination: {kind: ServiceAccount, name: bookstore, namespace: bookstore}
  sources:
  - {kind: ServiceAccount, name: bookbuyer, namespace: bookbuyer}
  - {kind: ServiceAccount, name: bookthief, namespace: bookthief}
  rules:
  - {kind: HTTPRouteGroup, name: bookstore-routes}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: echo-ports, namespace: bookwarehouse}
spec:
  matches: {ports: []}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: echo-clients, namespace: bookwarehouse}
spec:
  destination: {kind: ServiceAccount, name: bookwarehouse, namespace: bookwarehouse}
  sources:
  - {kind: ServiceAccount, name: bookbuyer, namespace: bookbuyer}
  - {kind: ServiceAccount, name: bookthief, namespace: bookthief}
  rules:
  - {kind: TCPRoute, name: echo-ports}
"#;

/// The control over [`POLICY`], and what these tests start on it.
struct Setup(LiveControl);

impl std::ops::Deref for Setup {
    type Target = LiveControl;
    fn deref(&self) -> &LiveControl {
        &self.0
    }
}

impl Setup {
    async fn start() -> Setup {
        Setup(LiveControl::start(&[("access.yaml", POLICY)], &[]).await)
    }

    /// The bookstore app (bookstore/bookstore), serving bookstore/bookstore-v1.
    async fn bookstore(&self) -> Process {
        self.app(
            "bookstore-v1",
            "bookstore/bookstore",
            &["bookstore/bookstore-v1"],
        )
        .await
    }

    async fn mesh(&self, identity: &str) -> Mesh {
        self.0
            .mesh(identity, &[], &["bookstore/bookstore-v1"])
            .await
    }

    async fn stop(self, apps: Vec<Process>) {
        self.0.stop(apps).await;
    }
}

fn spiffe(identity: &str) -> SpiffeId {
    identity
        .parse::<ServiceAccount>()
        .unwrap()
        .spiffe_id(TRUST_DOMAIN)
}

/// An HTTP/2 connection to `addr` with `mesh`'s certificate, and the task driving it (it ends
/// when the server closes the connection).
async fn h2(mesh: &Mesh, addr: SocketAddr) -> (SendRequest<Empty<Bytes>>, JoinHandle<()>) {
    let config = tls::with_alpn(&mesh.client_tls(), b"h2");
    let tls = tls::connect(addr, config).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    (
        sender,
        tokio::spawn(async move {
            let _ = connection.await;
        }),
    )
}

async fn get_on(sender: &mut SendRequest<Empty<Bytes>>) -> u16 {
    let request = Request::get(URL).body(Empty::new()).unwrap();
    sender
        .send_request(request)
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn get(client: &MeshClient<Full<Bytes>>) -> Result<u16, OutboundError> {
    let request = Request::get(URL).body(Full::default()).unwrap();
    client.send(request).await.map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_identity_gets_no_certificate_and_servers_refuse_it_within_seconds() {
    let setup = Setup::start().await;
    let app = setup.bookstore().await;
    let addr = app.addrs[0];
    let buyer = setup.mesh("bookbuyer/bookbuyer").await;
    let thief = setup.mesh("bookthief/bookthief").await;
    for mesh in [&buyer, &thief] {
        policy_until(mesh, "the bookstore's endpoint", WAIT, |p| {
            !p.endpoints("bookstore", "bookstore-v1").is_empty()
        })
        .await;
    }
    // Both are served, each over a connection that stays open.
    let (mut thief_conn, thief_open) = h2(&thief, addr).await;
    let (mut buyer_conn, buyer_open) = h2(&buyer, addr).await;
    assert_eq!(get_on(&mut thief_conn).await, 200);
    assert_eq!(get_on(&mut buyer_conn).await, 200);

    setup.revoke(&[
        "--identity",
        "bookthief/bookthief",
        "--reason",
        "stolen laptop",
    ]);
    let written = Instant::now();
    let thief_id = spiffe("bookthief/bookthief");
    policy_until(&buyer, "the revocation", REVOKED_WITHIN, |p| {
        p.snapshot.is_revoked(&thief_id)
    })
    .await;
    let reached = written.elapsed();
    // The bookstore closes the thief's open connection...
    tokio::time::timeout(REVOKED_WITHIN, thief_open)
        .await
        .expect("the bookstore closes the revoked caller's connection")
        .unwrap();
    let closed = written.elapsed();
    eprintln!(
        "revocation: a workload's policy after {reached:?}, the thief's connection closed after {closed:?}"
    );
    // ...refuses it on a new one, and keeps serving the buyer on its open connection.
    let thief_client = MeshClient::<Full<Bytes>>::new(thief.clone());
    assert_eq!(get(&thief_client).await.unwrap(), 403);
    assert!(!buyer_open.is_finished());
    assert_eq!(get_on(&mut buyer_conn).await, 200);
    let buyer_client = MeshClient::<Full<Bytes>>::new(buyer.clone());
    assert_eq!(get(&buyer_client).await.unwrap(), 200);

    // The control renews nothing for the thief, and enrolls it with no new token either.
    let renewal = refused(renew(&setup.addr(), &thief.credentials()).await);
    assert!(
        renewal.contains(r#"identity bookthief/bookthief is revoked ("stolen laptop")"#),
        "{renewal}"
    );
    let token = setup.token("bookthief/bookthief", &[]);
    let enrollment = refused(enroll(&setup.addr(), &token).await);
    assert!(
        enrollment.contains(r#"identity bookthief/bookthief is revoked ("stolen laptop")"#),
        "{enrollment}"
    );
    // The thief's policy stream ends, and reopening it is refused: its status says why.
    status_until(&thief, "the thief's Watch refused", WAIT, |m| {
        m.status()
            .last_watch_error
            .is_some_and(|e| e.contains("bookthief/bookthief is revoked"))
    })
    .await;
    assert!(!thief.status().connected);
    // The buyer renews as before, and its stream stays healthy.
    renew(&setup.addr(), &buyer.credentials()).await.unwrap();
    assert_eq!(buyer.status().watch_failures, 0);
    drop((thief, buyer, thief_client, buyer_client, buyer_conn));
    setup.stop(vec![app]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_callers_tcp_connections_are_closed() {
    use tokio::io::AsyncReadExt;
    let setup = Setup::start().await;
    let warehouse = setup.mesh("bookwarehouse/bookwarehouse").await;
    let echo = EchoServer::start(&warehouse).await;
    let addr = echo.addr;
    let buyer = setup.mesh("bookbuyer/bookbuyer").await;
    let thief = setup.mesh("bookthief/bookthief").await;
    let mut buyer_conn = tcp_echo(&buyer, addr).await.expect("the buyer is allowed");
    let mut thief_conn = tcp_echo(&thief, addr).await.expect("the thief is allowed");

    setup.revoke(&["--identity", "bookthief/bookthief"]);
    let written = Instant::now();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(REVOKED_WITHIN, thief_conn.read(&mut buf))
        .await
        .expect("the revoked caller's connection is closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    eprintln!(
        "revocation: the thief's TCP connection closed after {:?}",
        written.elapsed()
    );
    assert!(
        tcp_echo(&thief, addr).await.is_err(),
        "and it gets no new one"
    );
    echoes(&mut buyer_conn)
        .await
        .expect("the buyer's stays open");
    drop(echo);
    drop((warehouse, buyer, thief));
    setup.stop(Vec::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_send_nothing_to_a_revoked_server() {
    let setup = Setup::start().await;
    let app = setup.bookstore().await;
    let buyer = setup.mesh("bookbuyer/bookbuyer").await;
    policy_until(&buyer, "the bookstore's endpoint", WAIT, |p| {
        !p.endpoints("bookstore", "bookstore-v1").is_empty()
    })
    .await;
    let client = MeshClient::<Full<Bytes>>::new(buyer.clone());
    assert_eq!(get(&client).await.unwrap(), 200);
    assert_eq!(client.connected_endpoints(), 1);

    setup.revoke(&["--identity", "bookstore/bookstore"]);
    let store = spiffe("bookstore/bookstore");
    policy_until(&buyer, "the revocation", REVOKED_WITHIN, |p| {
        p.snapshot.is_revoked(&store)
    })
    .await;
    let error = get(&client).await.unwrap_err();
    assert!(matches!(error, OutboundError::Revoked(_)), "{error}");
    assert!(
        error.to_string().contains("bookstore/bookstore-v1"),
        "{error}"
    );
    // Its connection was dropped with the policy change.
    assert_eq!(client.connected_endpoints(), 0);
    drop((client, buyer));
    setup.stop(vec![app]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_reach_a_workload_within_a_second() {
    let setup = Setup::start().await;
    let buyer = setup.mesh("bookbuyer/bookbuyer").await;
    let mut times = Vec::new();
    for n in 1..=5 {
        let ghost = format!("bookstore/ghost-{n}");
        setup.revoke(&["--identity", &ghost]);
        let written = Instant::now();
        let id = spiffe(&ghost);
        policy_until(&buyer, &format!("{ghost} revoked"), REVOKED_WITHIN, |p| {
            p.snapshot.is_revoked(&id)
        })
        .await;
        times.push(written.elapsed());
    }
    eprintln!("revocation reached a workload after {times:?}");
    assert!(
        times.iter().all(|t| *t < Duration::from_secs(1)),
        "{times:?}"
    );
    drop(buyer);
    setup.stop(Vec::new()).await;
}
