//! Attacks by a workload that holds a valid mesh certificate, against real processes on loopback
//! (the control service and a meshed app, `smi-test-control` and `smi-conformance-app`): each
//! attack that once worked is refused with a clear error, and the legitimate request beside it is
//! still served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use smi_client::control::{ControlAddr, renew};
use smi_client::{Mesh, MeshConfig};
use smi_core::{ServiceAccount, ServiceRef};
use smi_test_util::{Control, LiveControl, Process, TokenSpec, mint_token, policy_until, tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(20);

/// The buyer may GET the purchase page, and `/reports` with `x-role: reader`; `/tagged` with any
/// `x-tag` (a header that a rule matches on, whatever its value).
const POLICY: &str = r#"
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: bookstore-routes, namespace: bookstore}
spec:
  matches:
  - {name: buy, pathRegex: /buy-a-book/new, methods: [GET]}
  - {name: reports, pathRegex: /reports$, methods: [GET], headers: {x-role: reader}}
  - {name: tagged, pathRegex: /tagged$, methods: [GET], headers: {x-tag: ".+"}}
  - {name: storefront, pathRegex: /$, methods: [GET], headers: {host: "bookstore-v1\\.bookstore(:\\d+)?"}}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: buyers, namespace: bookstore}
spec:
  destination: {kind: ServiceAccount, name: bookstore, namespace: bookstore}
  sources:
  - {kind: ServiceAccount, name: bookbuyer, namespace: bookbuyer}
  rules:
  - {kind: HTTPRouteGroup, name: bookstore-routes}
"#;

/// The control over [`POLICY`] and one meshed bookstore app.
struct Setup {
    live: LiveControl,
    app: Process,
}

impl std::ops::Deref for Setup {
    type Target = LiveControl;
    fn deref(&self) -> &LiveControl {
        &self.live
    }
}

impl Setup {
    async fn start() -> Setup {
        let live = LiveControl::start(&[("access.yaml", POLICY)], &[]).await;
        let app = live
            .app(
                "bookstore-v1",
                "bookstore/bookstore",
                &["bookstore/bookstore-v1"],
            )
            .await;
        Setup { live, app }
    }

    fn config(&self, identity: &str, token: String) -> MeshConfig {
        self.live
            .config(identity, token, &["bookstore/bookstore-v1"])
    }

    async fn mesh(&self, identity: &str) -> Mesh {
        self.live
            .mesh(identity, &[], &["bookstore/bookstore-v1"])
            .await
    }

    async fn stop(self) {
        self.live.stop(vec![self.app]).await;
    }
}

/// One HTTP/1.1 request, written byte for byte as given (no client normalizes it), over mTLS
/// with `mesh`'s certificate; returns the status and the body.
async fn raw_request(mesh: &Mesh, addr: SocketAddr, head: &str) -> (u16, String) {
    let config = tls::with_alpn(&mesh.client_tls(), b"http/1.1");
    let mut tls = tls::connect(addr, config).await.unwrap();
    tls.write_all(format!("{head}connection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, tls.read_to_end(&mut response))
        .await
        .expect("an answer")
        .ok();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The path and headers the app saw, from its echo.
fn echoed(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not the app's echo ({e}): {body}"))
}

async fn get(mesh: &Mesh, addr: SocketAddr, path: &str, headers: &[&str]) -> (u16, String) {
    let mut head = format!("GET {path} HTTP/1.1\r\nhost: bookstore-v1.bookstore\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    raw_request(mesh, addr, &head).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_are_normalized_before_they_are_authorized_and_the_app_sees_the_authorized_one() {
    let setup = Setup::start().await;
    let buyer = setup.mesh("bookbuyer/bookbuyer").await;
    let addr = setup.app.addrs[0];
    policy_until(&buyer, "the app's endpoint", WAIT, |p| {
        !p.endpoints("bookstore", "bookstore-v1").is_empty()
    })
    .await;

    let (status, body) = get(&buyer, addr, "/buy-a-book/new", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(echoed(&body)["path"], "/buy-a-book/new");

    // Once allowed by the prefix /buy-a-book/new, and read by the app as /admin/delete-all.
    let (status, body) = get(&buyer, addr, "/buy-a-book/new/../../admin/delete-all", &[]).await;
    assert_eq!(status, 403, "{body}");
    // An encoded separator is refused outright: servers disagree on what it means.
    let (status, body) = get(&buyer, addr, "/buy-a-book/new%2F..%2F..%2Fadmin", &[]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("encoded '/'"), "{body}");
    let (status, _) = get(&buyer, addr, "/buy-a-book/new%5C..%5Cadmin", &[]).await;
    assert_eq!(status, 400);

    // Other spellings of an allowed path are served, as the path that was authorized.
    for spelling in [
        "/%62uy-a-book/new",
        "//buy-a-book/./new",
        "/x/../buy-a-book/new",
    ] {
        let (status, body) = get(&buyer, addr, spelling, &[]).await;
        assert_eq!(status, 200, "{spelling}: {body}");
        assert_eq!(echoed(&body)["path"], "/buy-a-book/new", "{spelling}");
    }
    // The query string is not part of the path: it reaches the app as sent.
    let (status, _) = get(&buyer, addr, "/buy-a-book/new?next=/../admin", &[]).await;
    assert_eq!(status, 200);

    // curl, an outside client, with the path as is.
    let dir = tempfile::tempdir().unwrap();
    let files = buyer
        .credentials()
        .write_pem_files(dir.path(), "buyer")
        .unwrap();
    let curl = |path: &'static str| {
        let files = files.clone();
        tokio::task::spawn_blocking(move || {
            let host = "bookstore-v1.bookstore.svc.cluster.local";
            let output = std::process::Command::new("curl")
                .args([
                    "-sS",
                    "--path-as-is",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                ])
                .args(["--max-time", "5", "--cacert"])
                .arg(&files.bundle)
                .arg("--cert")
                .arg(&files.chain)
                .arg("--key")
                .arg(&files.key)
                .args(["--resolve", &format!("{host}:{}:127.0.0.1", addr.port())])
                .arg(format!("https://{host}:{}{path}", addr.port()))
                .output()
                .expect("curl is installed (scripts/test installs it)");
            String::from_utf8_lossy(&output.stdout).into_owned()
        })
    };
    assert_eq!(
        curl("/buy-a-book/new/../../admin/delete-all")
            .await
            .unwrap(),
        "403"
    );
    assert_eq!(curl("/buy-a-book/new").await.unwrap(), "200");
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_that_policy_matches_are_unambiguous() {
    let setup = Setup::start().await;
    let buyer = setup.mesh("bookbuyer/bookbuyer").await;
    let addr = setup.app.addrs[0];
    policy_until(&buyer, "the app's endpoint", WAIT, |p| {
        !p.endpoints("bookstore", "bookstore-v1").is_empty()
    })
    .await;

    let (status, _) = get(&buyer, addr, "/reports", &["x-role: reader"]).await;
    assert_eq!(status, 200);
    // A second copy the policy never allowed: matched as "reader,admin", which it refuses.
    let (status, _) = get(
        &buyer,
        addr,
        "/reports",
        &["x-role: reader", "x-role: admin"],
    )
    .await;
    assert_eq!(status, 403);
    // The app reads the value that was checked, not a copy that was not.
    let (status, body) = get(&buyer, addr, "/tagged", &["x-tag: a", "x-tag: b"]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(echoed(&body)["headers"]["x-tag"], "a,b");

    // `host` is the authority; several Host headers, or one that is not the authority, are 400.
    let (status, body) = raw_request(
        &buyer,
        addr,
        "GET / HTTP/1.1\r\nhost: bookstore-v1.bookstore\r\n",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = raw_request(
        &buyer,
        addr,
        "GET / HTTP/1.1\r\nhost: bookstore-v1.bookstore\r\nhost: admin.bookstore\r\n",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = raw_request(
        &buyer,
        addr,
        "GET http://admin.bookstore/ HTTP/1.1\r\nhost: bookstore-v1.bookstore\r\n",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Host header differs"), "{body}");
    let (status, _) = raw_request(
        &buyer,
        addr,
        "GET http://bookstore-v1.bookstore/ HTTP/1.1\r\nhost: bookstore-v1.bookstore\r\n",
    )
    .await;
    assert_eq!(status, 200);
    setup.stop().await;
}

/// A join token for `identity` serving `serves`, made without the checks that parsing names
/// applies (as a forged or hand-written one would be).
fn unchecked_token(state: &Path, identity: ServiceAccount, serves: &[ServiceRef]) -> String {
    mint_token(state, &identity, serves, TokenSpec::default()).token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_and_identity_names_cannot_be_confused() {
    let setup = Setup::start().await;
    // Once its certificate said `bookstore-v1.bookstore.svc.x.evil.svc.cluster.local`, which was
    // read as bookstore/bookstore-v1: its holder could register for that service's traffic.
    let token = unchecked_token(
        &setup.state,
        ServiceAccount::new("evil", "evil"),
        &[ServiceRef::new("evil", "bookstore-v1.bookstore.svc.x")],
    );
    let refused = Mesh::start(setup.config("evil/evil", token))
        .await
        .unwrap_err();
    let message = refused.to_string();
    assert!(message.contains("serves"), "{message}");
    assert!(message.contains("DNS-1123 label"), "{message}");
    // A namespace with a dot is refused the same way.
    let token = unchecked_token(
        &setup.state,
        ServiceAccount::new("evil.bookstore", "x"),
        &[],
    );
    let refused = Mesh::start(setup.config("evil.bookstore/x", token))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("DNS-1123 label"), "{refused}");

    // The legitimate bookstore still enrolled and serves its registered endpoint.
    let buyer = setup.mesh("bookbuyer/bookbuyer").await;
    policy_until(&buyer, "the app's endpoint", WAIT, |p| {
        p.endpoints("bookstore", "bookstore-v1").len() == 1
    })
    .await;
    let (status, _) = get(&buyer, setup.app.addrs[0], "/buy-a-book/new", &[]).await;
    assert_eq!(status, 200);
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_workload_can_pose_as_the_control_service() {
    let setup = Setup::start().await;
    // The control's identity cannot be bought with a token.
    let token = unchecked_token(
        &setup.state,
        ServiceAccount::new("smi-system", "smi-control"),
        &[],
    );
    let refused = Mesh::start(setup.config("smi-system/smi-control", token))
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("control service's own identity"),
        "{refused}"
    );

    // A workload with a valid certificate serving TLS with it is not taken for the control.
    let impostor = setup.mesh("bookstore/bookstore").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake = listener.local_addr().unwrap();
    let acceptor =
        tokio_rustls::TlsAcceptor::from(Arc::new(impostor.credentials().server_config().unwrap()));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = acceptor.accept(tcp).await;
        }
    });
    let buyer = setup.mesh("bookbuyer/bookbuyer").await;
    let error = renew(
        &ControlAddr::parse(&fake.to_string()).unwrap(),
        &buyer.credentials(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(error.contains("not the control service"), "{error}");
    // The real control renews the same credentials.
    let renewed = renew(
        &ControlAddr::parse(&setup.control.addrs[0].to_string()).unwrap(),
        &buyer.credentials(),
    )
    .await
    .unwrap();
    assert_eq!(renewed.spiffe_id(), buyer.credentials().spiffe_id());
    setup.stop().await;
}
