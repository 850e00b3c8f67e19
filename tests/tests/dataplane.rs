//! The data plane end to end, in one test process: a real control service, real workloads
//! (`Mesh`), real mTLS on 127.0.0.1, policy changed by writing files. Every wait is on an event
//! or a condition, bounded by 5 s.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use smi_client::control::{ControlAddr, enroll};
use smi_client::mesh::PolicyState;
use smi_client::{Mesh, MeshClient, MeshConfig, OutboundError};
use smi_control::serve::{Running, ServeConfig, start};
use smi_server::{AuthorizeLayer, Peer};
use smi_tests::{join_token, policy_until, renewals, status_until};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(5);
const ACCESS: &str = include_str!("../../examples/bookstore/policy/bookstore-access.yaml");

fn split(v1: u32, v2: u32) -> String {
    format!(
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata:\n  name: bookstore-split\n  namespace: bookstore\nspec:\n  service: bookstore\n  backends:\n  - service: bookstore-v1\n    weight: {v1}\n  - service: bookstore-v2\n    weight: {v2}\n"
    )
}

/// Writes a policy file the way tools do (a temporary file renamed into place).
fn write(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

struct Cluster {
    _dir: tempfile::TempDir,
    policy: PathBuf,
    state: PathBuf,
    control: Running,
}

impl Cluster {
    /// A control service with the bookstore access policy and a v1/v2 split of these weights.
    async fn start(v1: u32, v2: u32) -> Cluster {
        Self::start_with(v1, v2, Duration::from_secs(3600)).await
    }

    /// The same, issuing certificates that live `certificate_ttl`.
    async fn start_with(v1: u32, v2: u32, certificate_ttl: Duration) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&policy).unwrap();
        write(&policy, "access.yaml", ACCESS);
        write(&policy, "split.yaml", &split(v1, v2));
        let control = start(ServeConfig {
            policy_dir: policy.clone(),
            state_dir: state.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            admin: "127.0.0.1:0".parse().unwrap(),
            certificate_ttl,
            ..ServeConfig::default()
        })
        .await
        .unwrap();
        Cluster {
            _dir: dir,
            policy,
            state,
            control,
        }
    }

    fn addr(&self) -> ControlAddr {
        ControlAddr::parse(&self.control.api_addr.to_string()).unwrap()
    }

    fn token(&self, identity: &str, serves: &[&str]) -> String {
        join_token(&self.state, identity, serves)
    }

    async fn mesh(&self, identity: &str, serves: &[&str], calls: &[&str]) -> Mesh {
        let config = MeshConfig::new(self.addr(), self.token(identity, serves))
            .calls(calls.iter().copied())
            .workload(identity);
        Mesh::start(config).await.unwrap()
    }

    /// bookstore-v1 and bookstore-v2, both running as ServiceAccount bookstore/bookstore.
    async fn bookstores(&self) -> [Server; 2] {
        [
            self.server(
                "bookstore-v1",
                "bookstore/bookstore",
                &["bookstore/bookstore-v1"],
            )
            .await,
            self.server(
                "bookstore-v2",
                "bookstore/bookstore",
                &["bookstore/bookstore-v2"],
            )
            .await,
        ]
    }

    /// A workload that calls bookstore.bookstore, once it knows the endpoints of `backends`.
    async fn caller(&self, identity: &str, backends: &[&str]) -> Mesh {
        let mesh = self.mesh(identity, &[], &["bookstore/bookstore"]).await;
        with_endpoints(&mesh, backends).await;
        mesh
    }

    /// A meshed server that answers every path with its name (header `x-backend` and body).
    async fn server(&self, name: &'static str, identity: &str, serves: &[&str]) -> Server {
        let mesh = self.mesh(identity, serves, &[]).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().fallback(
            move |axum::Extension(peer): axum::Extension<Peer>| async move {
                (
                    [("x-backend", name)],
                    format!("{name} served {}", peer.identity),
                )
            },
        );
        let app = tower_layer::Layer::layer(&AuthorizeLayer::new(mesh.clone()), router);
        let registrations = serves.iter().map(|s| mesh.register(s, addr)).collect();
        let serving = {
            let mesh = mesh.clone();
            tokio::spawn(async move { smi_server::serve(listener, &mesh, app).await })
        };
        let mesh = mesh.clone();
        Server {
            addr,
            mesh,
            _registrations: registrations,
            serving,
        }
    }
}

struct Server {
    addr: SocketAddr,
    mesh: Mesh,
    _registrations: Vec<smi_client::mesh::Registration>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

/// Waits until the mesh's policy satisfies `done`.
async fn until(mesh: &Mesh, done: impl Fn(&PolicyState) -> bool) {
    policy_until(mesh, "the expected policy state", WAIT, done).await;
}

async fn with_endpoints(mesh: &Mesh, services: &[&str]) {
    until(mesh, |p| {
        services
            .iter()
            .all(|s| !p.endpoints("bookstore", s).is_empty())
    })
    .await;
}

async fn get(
    client: &MeshClient<Full<Bytes>>,
    uri: &str,
) -> Result<(StatusCode, String), OutboundError> {
    let response = client
        .send(Request::get(uri).body(Full::new(Bytes::new())).unwrap())
        .await?;
    let status = response.status();
    let backend = response
        .headers()
        .get("x-backend")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    response.into_body().collect().await.unwrap();
    Ok((status, backend))
}

/// Sends requests until `done` holds for one, bounded by WAIT; returns how long it took.
async fn until_response(
    client: &MeshClient<Full<Bytes>>,
    uri: &str,
    done: impl Fn(&(StatusCode, String)) -> bool,
) -> Duration {
    let started = Instant::now();
    tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(answer) = get(client, uri).await
                && done(&answer)
            {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the expected response within 5 s");
    started.elapsed()
}

const BUY: &str = "http://bookstore.bookstore/buy-a-book/new";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_allows_the_buyer_and_denies_the_thief_over_mtls() {
    let cluster = Cluster::start(50, 50).await;
    let _bookstores = cluster.bookstores().await;
    let buyer = cluster
        .mesh("bookbuyer/bookbuyer", &[], &["bookstore/bookstore"])
        .await;
    let thief = cluster
        .mesh("bookthief/bookthief", &[], &["bookstore/bookstore"])
        .await;
    with_endpoints(&buyer, &["bookstore-v1", "bookstore-v2"]).await;
    with_endpoints(&thief, &["bookstore-v1", "bookstore-v2"]).await;

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
    cluster.control.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_change_shifts_traffic_within_a_second() {
    let cluster = Cluster::start(100, 0).await;
    let _bookstores = cluster.bookstores().await;
    let buyer = cluster
        .caller("bookbuyer/bookbuyer", &["bookstore-v1", "bookstore-v2"])
        .await;
    let client = MeshClient::new(buyer.clone());
    until_response(&client, BUY, |(_, b)| b == "bookstore-v1").await;
    for _ in 0..20 {
        assert_eq!(get(&client, BUY).await.unwrap().1, "bookstore-v1");
    }

    write(&cluster.policy, "split.yaml", &split(0, 100));
    let took = until_response(&client, BUY, |(_, b)| b == "bookstore-v2").await;
    assert!(took < Duration::from_secs(1), "the shift took {took:?}");
    for _ in 0..20 {
        assert_eq!(get(&client, BUY).await.unwrap().1, "bookstore-v2");
    }
    cluster.control.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_applies_to_open_connections_within_a_second() {
    let cluster = Cluster::start(50, 50).await;
    let _bookstores = cluster.bookstores().await;
    let buyer = cluster
        .caller("bookbuyer/bookbuyer", &["bookstore-v1", "bookstore-v2"])
        .await;
    let client = MeshClient::new(buyer);
    // Connections to both versions are open and pooled.
    until_response(&client, BUY, |(_, b)| b == "bookstore-v1").await;
    until_response(&client, BUY, |(_, b)| b == "bookstore-v2").await;

    std::fs::remove_file(cluster.policy.join("access.yaml")).unwrap();
    let took = until_response(&client, BUY, |(s, _)| *s == StatusCode::FORBIDDEN).await;
    assert!(took < Duration::from_secs(1), "revocation took {took:?}");
    // Every later request is refused: 403, or, for one that crossed the server's GOAWAY (the
    // connections of a caller that lost access are closed), an error. Never a 200.
    for _ in 0..20 {
        match get(&client, BUY).await {
            Ok((status, _)) => assert_eq!(status, StatusCode::FORBIDDEN),
            Err(e) => assert!(format!("{e:?}").contains("GoAway"), "{e:?}"),
        }
    }
    // And granted again by writing the file back.
    write(&cluster.policy, "access.yaml", ACCESS);
    until_response(&client, BUY, |(s, _)| *s == StatusCode::OK).await;
    cluster.control.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_grpc_call_gets_permission_denied() {
    let cluster = Cluster::start(50, 50).await;
    let _bookstores = cluster.bookstores().await;
    let thief = cluster
        .caller("bookthief/bookthief", &["bookstore-v1", "bookstore-v2"])
        .await;
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
    cluster.control.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_is_skipped_and_unknown_services_are_clear_errors() {
    let cluster = Cluster::start(100, 0).await;
    let _v1 = cluster
        .server(
            "bookstore-v1",
            "bookstore/bookstore",
            &["bookstore/bookstore-v1"],
        )
        .await;
    // A second bookstore-v1 endpoint whose process is gone: its port refuses connections.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let ghost = cluster
        .mesh("bookstore/bookstore", &["bookstore/bookstore-v1"], &[])
        .await;
    let _ghost_registration = ghost.register("bookstore/bookstore-v1", dead);
    let buyer = cluster
        .mesh("bookbuyer/bookbuyer", &[], &["bookstore/bookstore"])
        .await;
    until(&buyer, |p| {
        p.endpoints("bookstore", "bookstore-v1").len() == 2
    })
    .await;
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
    cluster.control.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_to_endpoints_that_left_the_policy_are_dropped() {
    let cluster = Cluster::start(100, 0).await;
    let v1 = cluster
        .server("v1", "bookstore/bookstore", &["bookstore/bookstore-v1"])
        .await;
    let mut leaving = cluster
        .server(
            "leaving",
            "bookstore/bookstore",
            &["bookstore/bookstore-v1"],
        )
        .await;
    let buyer = cluster
        .mesh("bookbuyer/bookbuyer", &[], &["bookstore/bookstore"])
        .await;
    until(&buyer, |p| {
        p.endpoints("bookstore", "bookstore-v1").len() == 2
    })
    .await;
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

    leaving._registrations.clear();
    until(&buyer, |p| {
        p.endpoints("bookstore", "bookstore-v1").len() == 1
    })
    .await;
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
    cluster.control.shutdown().await;
}

/// Talks TLS to a mesh server and tries one HTTP/1.1 request; returns what came back.
async fn raw_exchange(addr: SocketAddr, config: rustls::ClientConfig) -> Result<Vec<u8>, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(
        b"GET /buy-a-book/new HTTP/1.1\r\nhost: bookstore.bookstore\r\nconnection: close\r\n\r\n",
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, tls.read_to_end(&mut buf))
        .await
        .map_err(|_| "no answer".to_owned())?
        .map_err(|e| e.to_string())?;
    Ok(buf)
}

/// Presents no client certificate.
#[derive(Debug)]
struct NoCertificate;

impl rustls::client::ResolvesClientCert for NoCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

/// The mesh client TLS of `credentials`, speaking HTTP/1.1 (the raw exchange writes HTTP/1.1).
fn http1_tls(credentials: &smi_client::control::Credentials) -> rustls::ClientConfig {
    let mut config = credentials.client_config().unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_a_certificate_or_with_another_cas_are_refused_at_the_handshake() {
    let cluster = Cluster::start(50, 50).await;
    let v1 = cluster
        .server(
            "bookstore-v1",
            "bookstore/bookstore",
            &["bookstore/bookstore-v1"],
        )
        .await;
    let buyer = cluster
        .mesh("bookbuyer/bookbuyer", &[], &["bookstore/bookstore"])
        .await;

    let bundle = buyer.credentials().bundle_der().to_vec();
    let mut without = http1_tls(&buyer.credentials());
    without.client_auth_cert_resolver = Arc::new(NoCertificate);
    let answer = raw_exchange(v1.addr, without).await;
    assert!(
        !answer.as_ref().is_ok_and(|b| b.starts_with(b"HTTP/")),
        "answered without a client certificate: {answer:?}"
    );

    // A certificate from another control service's CA.
    let other = Cluster::start(50, 50).await;
    let foreign = enroll(&other.addr(), &other.token("bookbuyer/bookbuyer", &[]))
        .await
        .unwrap();
    let foreign = foreign.with_bundle(bundle).unwrap();
    let answer = raw_exchange(v1.addr, http1_tls(&foreign)).await;
    assert!(
        !answer.as_ref().is_ok_and(|b| b.starts_with(b"HTTP/")),
        "answered a foreign certificate: {answer:?}"
    );

    // The same request with the buyer's own certificate is answered.
    let answer = raw_exchange(v1.addr, http1_tls(&buyer.credentials())).await;
    assert!(answer.unwrap().starts_with(b"HTTP/1.1 200"));
    cluster.control.shutdown().await;
    other.control.shutdown().await;
}

/// Buys books in a loop until `stop`, with a fresh client (new connections, new handshakes)
/// every 25 requests. Returns the number answered 200 and every other outcome.
async fn buy_until(mesh: Mesh, mut stop: tokio::sync::watch::Receiver<bool>) -> (u64, Vec<String>) {
    let (mut ok, mut other) = (0, Vec::new());
    let mut client = MeshClient::new(mesh.clone());
    for n in 0.. {
        if *stop.borrow_and_update() {
            break;
        }
        if n % 25 == 0 {
            client = MeshClient::new(mesh.clone());
        }
        match get(&client, BUY).await {
            Ok((StatusCode::OK, _)) => ok += 1,
            Ok((status, backend)) => other.push(format!("{status} from {backend}")),
            Err(e) => other.push(e.to_string()),
        }
    }
    (ok, other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_under_load_drops_no_request() {
    // Certificates live 3 s: every workload renews about every 2 s.
    let cluster = Cluster::start_with(50, 50, Duration::from_secs(3)).await;
    let v1 = cluster
        .mesh("bookstore/bookstore", &["bookstore/bookstore-v1"], &[])
        .await;
    let _bookstores = cluster.bookstores().await;
    let buyer = cluster
        .caller("bookbuyer/bookbuyer", &["bookstore-v1", "bookstore-v2"])
        .await;
    let first_certificate = buyer.credentials().chain_der()[0].clone();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(buy_until(buyer.clone(), stopped));
    // Wait (event: the credentials change) for two renewals of the buyer and of a server.
    for mesh in [&buyer, &v1] {
        renewals(mesh, 2, Duration::from_secs(10)).await;
    }
    stop.send(true).unwrap();
    let (ok, other) = load.await.unwrap();
    assert!(
        other.is_empty(),
        "{} requests not answered 200: {:?}",
        other.len(),
        &other[..other.len().min(5)]
    );
    assert!(ok > 100, "only {ok} requests");
    assert_ne!(buyer.credentials().chain_der()[0], first_certificate);
    cluster.control.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_restart_under_load_drops_no_request() {
    let cluster = Cluster::start(50, 50).await;
    let _bookstores = cluster.bookstores().await;
    let buyer = cluster
        .caller("bookbuyer/bookbuyer", &["bookstore-v1", "bookstore-v2"])
        .await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(buy_until(buyer.clone(), stopped));

    let Cluster {
        _dir,
        policy,
        state,
        control,
    } = cluster;
    let api = control.api_addr;
    control.shutdown().await;
    // The control is down: the workload notices, and keeps serving and calling.
    status_until(&buyer, "noticing the control is gone", WAIT, |m| {
        !m.status().connected
    })
    .await;
    let restarted = start(ServeConfig {
        policy_dir: policy,
        state_dir: state,
        listen: api,
        admin: "127.0.0.1:0".parse().unwrap(),
        ..ServeConfig::default()
    })
    .await
    .unwrap();
    // It reconnects, and the servers re-register.
    status_until(&buyer, "reconnecting", WAIT, |m| m.status().connected).await;
    let admin = restarted.admin_addr;
    tokio::time::timeout(WAIT, async {
        loop {
            let body = reqwest_like_get(admin, "/debug/policy").await;
            if body.matches("\"port\"").count() >= 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("both servers re-register within 5 s");
    stop.send(true).unwrap();
    let (ok, other) = load.await.unwrap();
    assert!(
        other.is_empty(),
        "{} requests not answered 200: {:?}",
        other.len(),
        &other[..other.len().min(5)]
    );
    assert!(ok > 20, "only {ok} requests");
    assert!(buyer.status().ready);
    restarted.shutdown().await;
}

/// A plain HTTP/1.1 GET on loopback (the admin server), body as text.
async fn reqwest_like_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    out
}

fn tcp_policy(ports: &str) -> String {
    format!(
        "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {{name: echo-ports, namespace: bookwarehouse}}\nspec:\n  matches:\n    ports: {ports}\n---\napiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {{name: echo-clients, namespace: bookwarehouse}}\nspec:\n  destination: {{kind: ServiceAccount, name: bookwarehouse, namespace: bookwarehouse}}\n  sources:\n  - {{kind: ServiceAccount, name: bookbuyer, namespace: bookbuyer}}\n  rules:\n  - {{kind: TCPRoute, name: echo-ports}}\n"
    )
}

/// Opens a mesh TLS connection to `addr` and checks that a line comes back (an echo).
async fn tcp_echo(
    mesh: &Mesh,
    addr: SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let mut tls = tokio_rustls::TlsConnector::from(mesh.client_tls())
        .connect(name, tcp)
        .await?;
    tls.write_all(b"ping\n").await?;
    let mut buf = [0u8; 5];
    tokio::time::timeout(WAIT, tls.read_exact(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("no echo"))??;
    assert_eq!(&buf, b"ping\n");
    Ok(tls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_routes_are_enforced_at_accept_and_open_connections_close_when_revoked() {
    use tokio::io::AsyncReadExt;
    let cluster = Cluster::start(50, 50).await;
    write(&cluster.policy, "tcp.yaml", &tcp_policy("[]"));
    let server = cluster
        .mesh(
            "bookwarehouse/bookwarehouse",
            &["bookwarehouse/bookwarehouse"],
            &[],
        )
        .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let echo = {
        let server = server.clone();
        tokio::spawn(async move {
            smi_server::serve_tcp(listener, &server, |stream, _peer| async move {
                let (mut read, mut write) = tokio::io::split(stream);
                let _ = tokio::io::copy(&mut read, &mut write).await;
            })
            .await
        })
    };
    let buyer = cluster.mesh("bookbuyer/bookbuyer", &[], &[]).await;
    let thief = cluster.mesh("bookthief/bookthief", &[], &[]).await;
    // The server has the TCP policy once its snapshot lists the target.
    until(&server, |p| {
        p.snapshot
            .policy()
            .targets
            .iter()
            .any(|t| t.meta.name == "echo-clients")
    })
    .await;

    let mut open = tcp_echo(&buyer, addr).await.expect("the buyer is allowed");
    assert!(
        tcp_echo(&thief, addr).await.is_err(),
        "the thief must not get an echo"
    );

    // Only port 1 now: the open connection is closed within a second.
    let changed = Instant::now();
    write(&cluster.policy, "tcp.yaml", &tcp_policy("[1]"));
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(WAIT, open.read(&mut buf))
        .await
        .expect("the connection is closed within 5 s");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        changed.elapsed() < Duration::from_secs(1),
        "closing took {:?}",
        changed.elapsed()
    );
    assert!(
        tcp_echo(&buyer, addr).await.is_err(),
        "new connections are refused too"
    );
    echo.abort();
    cluster.control.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_both_directions_and_the_admin_endpoint_serves_them() {
    let cluster = Cluster::start(100, 0).await;
    let v1 = cluster
        .server(
            "bookstore-v1",
            "bookstore/bookstore",
            &["bookstore/bookstore-v1"],
        )
        .await;
    let buyer = cluster
        .mesh("bookbuyer/bookbuyer", &[], &["bookstore/bookstore"])
        .await;
    let thief = cluster
        .mesh("bookthief/bookthief", &[], &["bookstore/bookstore"])
        .await;
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
    let inbound = reqwest_like_get(admin_addr, "/metrics").await;
    assert!(inbound.starts_with("HTTP/1.1 200"), "{inbound}");
    let allowed = "smi_requests_total{destination=\"spiffe://cluster.local/ns/bookstore/sa/bookstore\",direction=\"inbound\",route=\"TrafficTarget bookstore/bookbuyer-access-bookstore rule 0 (HTTPRouteGroup bookstore-service-routes) match buy-a-book\",source=\"spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer\",status=\"200\"} 3";
    assert!(inbound.contains(allowed), "{inbound}");
    assert!(inbound.contains("route=\"denied\",source=\"spiffe://cluster.local/ns/bookthief/sa/bookthief\",status=\"403\"} 3"), "{inbound}");
    assert!(
        inbound.contains("smi_request_duration_seconds_bucket{"),
        "{inbound}"
    );
    let status = reqwest_like_get(admin_addr, "/status").await;
    assert!(
        status.contains("ready: true") && status.contains("connected: true"),
        "{status}"
    );

    let outbound = buyer.metrics().prometheus();
    assert!(outbound.contains("destination=\"bookstore/bookstore-v1\",direction=\"outbound\",route=\"sent\",source=\"spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer\",status=\"200\"} 3"), "{outbound}");
    serving.abort();
    cluster.control.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_lived_stream_is_closed_when_its_caller_loses_access() {
    let cluster = Cluster::start(100, 0).await;
    let server = cluster
        .mesh("bookstore/bookstore", &["bookstore/bookstore-v1"], &[])
        .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let _registration = server.register("bookstore/bookstore-v1", listener.local_addr().unwrap());
    // An endless response: a chunk every 20 ms.
    let router = Router::new().fallback(|| async {
        let ticks = tokio_stream::StreamExt::map(
            tokio_stream::wrappers::IntervalStream::new(tokio::time::interval(
                Duration::from_millis(20),
            )),
            |_| Ok::<_, std::convert::Infallible>(Bytes::from_static(b"tick\n")),
        );
        axum::body::Body::from_stream(ticks)
    });
    let app = tower_layer::Layer::layer(&AuthorizeLayer::new(server.clone()), router);
    let serving = {
        let server = server.clone();
        tokio::spawn(async move { smi_server::serve(listener, &server, app).await })
    };
    let buyer = cluster
        .caller("bookbuyer/bookbuyer", &["bookstore-v1"])
        .await;
    let client = MeshClient::new(buyer);
    let response = client
        .send(
            Request::get("http://bookstore.bookstore/books-bought")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    for _ in 0..3 {
        let frame = tokio::time::timeout(WAIT, body.frame()).await.unwrap();
        assert!(
            matches!(frame, Some(Ok(_))),
            "the stream flows while allowed"
        );
    }

    let revoked = Instant::now();
    std::fs::remove_file(cluster.policy.join("access.yaml")).unwrap();
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match body.frame().await {
                Some(Ok(_)) => continue,
                other => return other.map(|r| r.map(|_| ())),
            }
        }
    })
    .await
    .expect("the stream ends within 5 s");
    assert!(!matches!(ended, Some(Ok(()))));
    assert!(
        revoked.elapsed() < Duration::from_secs(1),
        "closing took {:?}",
        revoked.elapsed()
    );
    serving.abort();
    cluster.control.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_layer_sends_mesh_services_through_the_mesh_and_the_rest_to_the_inner_client() {
    use tower_service::Service as _;
    let cluster = Cluster::start(100, 0).await;
    let _v1 = cluster
        .server(
            "bookstore-v1",
            "bookstore/bookstore",
            &["bookstore/bookstore-v1"],
        )
        .await;
    let buyer = cluster
        .caller("bookbuyer/bookbuyer", &["bookstore-v1"])
        .await;
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
    cluster.control.shutdown().await;
}

/// A workload's certificate chain, key (mode 0600) and trust bundle as PEM files, for outside
/// TLS clients.
fn pem_files(dir: &Path, name: &str, mesh: &Mesh) -> (PathBuf, PathBuf, PathBuf) {
    let files = mesh.credentials().write_pem_files(dir, name).unwrap();
    (files.chain, files.key, files.bundle)
}

/// `curl` against a meshed server; returns (exit code, "<status> HTTP/<version>").
fn curl(addr: SocketAddr, bundle: &Path, client: Option<(&Path, &Path)>) -> (i32, String) {
    let host = "bookstore-v1.bookstore.svc.cluster.local";
    let mut command = std::process::Command::new("curl");
    command
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} HTTP/%{http_version}",
            "--max-time",
            "5",
        ])
        .arg("--cacert")
        .arg(bundle)
        .args(["--resolve", &format!("{host}:{}:127.0.0.1", addr.port())]);
    if let Some((chain, key)) = client {
        command.arg("--cert").arg(chain).arg("--key").arg(key);
    }
    let output = command
        .arg(format!("https://{host}:{}/buy-a-book/new", addr.port()))
        .output()
        .expect("curl is installed (scripts/test installs it)");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_and_openssl_speak_to_a_meshed_server_with_standard_tls() {
    let cluster = Cluster::start(100, 0).await;
    let v1 = cluster
        .server(
            "bookstore-v1",
            "bookstore/bookstore",
            &["bookstore/bookstore-v1"],
        )
        .await;
    let buyer = cluster.mesh("bookbuyer/bookbuyer", &[], &[]).await;
    let thief = cluster.mesh("bookthief/bookthief", &[], &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let (buyer_crt, buyer_key, bundle) = pem_files(dir.path(), "buyer", &buyer);
    let (thief_crt, thief_key, _) = pem_files(dir.path(), "thief", &thief);
    let addr = v1.addr;

    let (without, with_buyer, with_thief) = tokio::task::spawn_blocking({
        let (bundle, buyer_crt, buyer_key, thief_crt, thief_key) = (
            bundle.clone(),
            buyer_crt.clone(),
            buyer_key.clone(),
            thief_crt,
            thief_key,
        );
        move || {
            (
                curl(addr, &bundle, None),
                curl(addr, &bundle, Some((&buyer_crt, &buyer_key))),
                curl(addr, &bundle, Some((&thief_crt, &thief_key))),
            )
        }
    })
    .await
    .unwrap();
    assert!(
        without.0 != 0 && without.1.starts_with("000"),
        "no client certificate must not get an answer: {without:?}"
    );
    // HTTP/2, negotiated by ALPN.
    assert_eq!(with_buyer, (0, "200 HTTP/2".to_owned()));
    assert_eq!(with_thief, (0, "403 HTTP/2".to_owned()));

    // openssl s_client: TLS 1.3, and the server's chain verifies against the bundle.
    let handshake = tokio::task::spawn_blocking(move || {
        std::process::Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &addr.to_string(),
                "-alpn",
                "h2",
                "-brief",
            ])
            .arg("-CAfile")
            .arg(&bundle)
            .arg("-cert")
            .arg(&buyer_crt)
            .arg("-key")
            .arg(&buyer_key)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl is installed (scripts/test installs it)")
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&handshake.stdout),
        String::from_utf8_lossy(&handshake.stderr)
    );
    assert!(text.contains("TLSv1.3"), "{text}");
    assert!(text.contains("Verification: OK"), "{text}");
    assert!(
        text.contains("Peer certificate: CN = bookstore/bookstore"),
        "{text}"
    );
    cluster.control.shutdown().await;
}
