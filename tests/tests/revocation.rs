//! Revocation end to end, against real processes on loopback (the control service and a meshed
//! bookstore app, `smi-test-control` and `smi-conformance-app`): after `smictl revoke` (its own
//! code, `smi_control::cli::run`, writing the state directory as the binary does) a revoked
//! identity gets no certificate, servers refuse it and close its connections, and callers send
//! it nothing; join tokens buy as many certificates as they allow; a chain of renewals ends at
//! its maximum lifetime; a certificate of a retired root renews no more.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http::Request;
use http_body_util::{Empty, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use smi_client::control::{ClientError, Credentials, enroll, renew};
use smi_client::{Mesh, MeshClient, OutboundError};
use smi_control::ca::CaStore;
use smi_control::enroll::JoinTokens;
use smi_core::{ServiceAccount, SpiffeId};
use smi_tests::{LiveControl, Process, TRUST_DOMAIN, join_token, policy_until, status_until};
use tokio::net::TcpStream;
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

/// The control over [`POLICY`]; what these tests add to it.
struct Setup(LiveControl);

impl std::ops::Deref for Setup {
    type Target = LiveControl;
    fn deref(&self) -> &LiveControl {
        &self.0
    }
}

impl std::ops::DerefMut for Setup {
    fn deref_mut(&mut self) -> &mut LiveControl {
        &mut self.0
    }
}

impl Setup {
    async fn start(env: &[(&str, &str)]) -> Setup {
        Setup(LiveControl::start(&[("access.yaml", POLICY)], env).await)
    }

    /// The bookstore app (bookstore/bookstore), serving bookstore/bookstore-v1.
    async fn bookstore(&self) -> Process {
        self.app(
            "bookstore-v1",
            "bookstore/bookstore",
            "bookstore/bookstore-v1",
        )
        .await
    }

    async fn mesh(&self, identity: &str) -> Mesh {
        self.0.mesh(identity, &["bookstore/bookstore-v1"]).await
    }

    /// `smictl revoke --state-dir <state> <args>`; returns when the file is written.
    fn revoke(&self, args: &[&str]) {
        let state = self.state.to_str().unwrap();
        let mut argv = vec!["smictl", "revoke", "--state-dir", state];
        argv.extend_from_slice(args);
        assert_eq!(smictl(&argv), ExitCode::SUCCESS, "{argv:?}");
    }

    async fn stop(self, apps: Vec<Process>) {
        self.0.stop(apps).await;
    }
}

/// smictl's own code, as its binary runs it.
fn smictl(argv: &[&str]) -> ExitCode {
    smi_control::cli::run(smi_control::cli::Cli::try_parse_from(argv).unwrap())
}

fn spiffe(identity: &str) -> SpiffeId {
    identity
        .parse::<ServiceAccount>()
        .unwrap()
        .spiffe_id(TRUST_DOMAIN)
}

fn refused(result: Result<Credentials, ClientError>) -> String {
    match result {
        Err(ClientError::Refused(message)) => message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// An HTTP/2 connection to `addr` with `mesh`'s certificate, and the task driving it (it ends
/// when the server closes the connection).
async fn h2(mesh: &Mesh, addr: SocketAddr) -> (SendRequest<Empty<Bytes>>, JoinHandle<()>) {
    let mut config = (*mesh.client_tls()).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
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
    let setup = Setup::start(&[]).await;
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
    let token = join_token(&setup.state, "bookthief/bookthief", &[]);
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

/// A mesh TLS connection to `addr` that echoed a line back.
async fn tcp_echo(
    mesh: &Mesh,
    addr: SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let mut tls = tokio_rustls::TlsConnector::from(mesh.client_tls())
        .connect(name, tcp)
        .await?;
    echoes(&mut tls).await?;
    Ok(tls)
}

async fn echoes(tls: &mut tokio_rustls::client::TlsStream<TcpStream>) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tls.write_all(b"ping\n").await?;
    let mut buf = [0u8; 5];
    tokio::time::timeout(WAIT, tls.read_exact(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("no echo"))??;
    assert_eq!(&buf, b"ping\n");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_callers_tcp_connections_are_closed() {
    use tokio::io::AsyncReadExt;
    let setup = Setup::start(&[]).await;
    let warehouse = setup.mesh("bookwarehouse/bookwarehouse").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let echo = {
        let warehouse = warehouse.clone();
        tokio::spawn(async move {
            smi_server::serve_tcp(listener, &warehouse, |stream, _peer| async move {
                let (mut read, mut write) = tokio::io::split(stream);
                let _ = tokio::io::copy(&mut read, &mut write).await;
            })
            .await
        })
    };
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
    echo.abort();
    drop((warehouse, buyer, thief));
    setup.stop(Vec::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_send_nothing_to_a_revoked_server() {
    let setup = Setup::start(&[]).await;
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
    let setup = Setup::start(&[]).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_tokens_buy_what_they_allow_and_a_revoked_one_buys_nothing() {
    let mut setup = Setup::start(&[]).await;
    let single = join_token(&setup.state, "bookbuyer/bookbuyer", &[]);
    enroll(&setup.addr(), &single).await.unwrap();
    let again = refused(enroll(&setup.addr(), &single).await);
    assert!(again.contains("was already used 1 time(s)"), "{again}");

    let store = CaStore::new(&setup.state);
    let tokens = JoinTokens::new(&store.token_key().unwrap(), TRUST_DOMAIN);
    let bundle = store.load(TRUST_DOMAIN).unwrap();
    let twice = tokens.create_with_uses(
        &"bookbuyer/bookbuyer".parse().unwrap(),
        &[],
        Duration::from_secs(600),
        bundle.bundle(),
        2,
    );
    enroll(&setup.addr(), &twice.token).await.unwrap();
    enroll(&setup.addr(), &twice.token).await.unwrap();
    assert!(refused(enroll(&setup.addr(), &twice.token).await).contains("used 2 time(s)"));

    let leaked = join_token(&setup.state, "bookbuyer/bookbuyer", &[]);
    let jti = smi_core::token::parse(&leaked).unwrap().claims.jti;
    setup.revoke(&["--token", &jti, "--reason", "pasted in a chat"]);
    let revoked = refused(enroll(&setup.addr(), &leaked).await);
    assert!(
        revoked.contains(&format!(
            r#"join token {jti} is revoked ("pasted in a chat")"#
        )),
        "{revoked}"
    );

    // The counts are in the state directory: a restarted control still refuses the used token.
    setup.restart().await;
    let after = refused(enroll(&setup.addr(), &single).await);
    assert!(after.contains("already used"), "{after}");
    let fresh = join_token(&setup.state, "bookbuyer/bookbuyer", &[]);
    enroll(&setup.addr(), &fresh).await.unwrap();
    setup.stop(Vec::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_renewals_ends_at_its_maximum_lifetime() {
    let setup = Setup::start(&[("SMI_TEST_MAX_CHAIN_LIFETIME_MS", "2000")]).await;
    let enrolled = Instant::now();
    let token = join_token(&setup.state, "bookbuyer/bookbuyer", &[]);
    let first = enroll(&setup.addr(), &token).await.unwrap();
    let renewed = renew(&setup.addr(), &first).await.unwrap();
    let since = |c: &Credentials| {
        smi_control::ca::first_enrolled(&c.chain_der()[0].clone().into()).unwrap()
    };
    // The renewal carries the first enrollment on; it does not start a new chain, and no
    // certificate of the chain outlives its end (the test control's certificates live 600 s).
    assert_eq!(since(&renewed), since(&first));
    let end = since(&first) + Duration::from_secs(2);
    for credentials in [&first, &renewed] {
        assert!(
            credentials.not_after() <= end,
            "{:?}",
            credentials.not_after()
        );
    }
    // The chain's end is a time, not an event: wait for it (with a second of margin). Then no
    // certificate of the chain renews (each has expired with it; the control's own refusal of
    // an old chain is unit-tested in enroll).
    tokio::time::sleep_until((enrolled + Duration::from_secs(3)).into()).await;
    for credentials in [&renewed, &first] {
        assert!(renew(&setup.addr(), credentials).await.is_err());
    }
    let token = join_token(&setup.state, "bookbuyer/bookbuyer", &[]);
    let fresh = enroll(&setup.addr(), &token).await.unwrap();
    renew(&setup.addr(), &fresh).await.unwrap();
    setup.stop(Vec::new()).await;
}

/// Sets every root but the newest in `ca.json` to retire now, as the end of a rotation's
/// overlap does (written as the control writes it: mode 0600, renamed into place).
fn retire_old_roots(state: &Path) {
    let path = state.join("ca.json");
    let mut ca: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for root in ca["roots"].as_array_mut().unwrap().iter_mut().skip(1) {
        root["retire_after_unix"] = now.into();
    }
    let tmp = state.join(".ca.json.test.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&ca).unwrap()).unwrap();
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_of_a_retired_root_renews_no_more() {
    let setup = Setup::start(&[]).await;
    let observer = setup.mesh("bookbuyer/bookbuyer").await;
    let token = join_token(&setup.state, "bookstore/bookstore", &[]);
    let old = enroll(&setup.addr(), &token).await.unwrap();

    let state = setup.state.to_str().unwrap();
    assert_eq!(
        smictl(&[
            "smictl",
            "ca",
            "rotate",
            "--state-dir",
            state,
            "--overlap",
            "1h"
        ]),
        ExitCode::SUCCESS
    );
    status_until(&observer, "the two-root bundle", WAIT, |m| {
        m.credentials().bundle_der().len() == 2
    })
    .await;
    let both = observer.credentials().bundle_der().to_vec();
    // During the overlap a certificate of the retiring root renews, into one of the new root:
    // that is how workloads migrate.
    let migrated = renew(
        &setup.addr(),
        &old.clone().with_bundle(both.clone()).unwrap(),
    )
    .await
    .unwrap();

    retire_old_roots(&setup.state);
    status_until(&observer, "the one-root bundle", WAIT, |m| {
        m.credentials().bundle_der().len() == 1
    })
    .await;
    // Trusting both roots on our side, the old certificate is refused by the control's
    // handshake, which trusts only the new root now.
    let error = renew(&setup.addr(), &old.clone().with_bundle(both).unwrap())
        .await
        .unwrap_err();
    eprintln!("a retired root's certificate renewing: {error}");
    // Not Certify's refusal (it never ran): the handshake's.
    let message = error.to_string();
    for code in ["PermissionDenied", "Unauthenticated", "InvalidArgument"] {
        assert!(!message.contains(code), "{message}");
    }
    // The migrated certificate renews.
    renew(&setup.addr(), &migrated).await.unwrap();
    drop(observer);
    setup.stop(Vec::new()).await;
}
