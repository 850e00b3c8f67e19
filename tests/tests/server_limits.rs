//! A meshed server's timeouts, connection limits and upgrades (`smi_server::ServeOptions`), end to
//! end in one test process: a real control service, real workloads, real mTLS on 127.0.0.1, and
//! clients that misbehave byte by byte. Timeouts are configured short (300 ms); every test
//! checks both that the server closed the connection within 5 s and that it did not close it
//! before the timeout, measured on the client's clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request as AxumRequest, State};
use axum::routing::get;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioExecutor, TokioIo};
use smi_client::Mesh;
use smi_client::MeshConfig;
use smi_client::control::ControlAddr;
use smi_control::serve::{Running, ServeConfig, start};
use smi_server::ServeOptions;
use smi_tests::{join_token, policy_until};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;

const WAIT: Duration = Duration::from_secs(5);
/// The timeout the tests configure.
const SHORT: Duration = Duration::from_millis(300);
const ACCESS: &str = include_str!("../../examples/bookstore/policy/bookstore-access.yaml");
const SERVER: &str = "bookstore/bookstore";

/// Writes a policy file the way tools do (a temporary file renamed into place).
fn write(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

/// A control service with the bookstore access policy (bookbuyer may reach bookstore), the
/// bookstore's workload, and two callers: bookbuyer (allowed) and bookthief (not listed).
struct Setup {
    _dir: tempfile::TempDir,
    policy: PathBuf,
    control: Running,
    server: Mesh,
    buyer: Mesh,
    thief: Mesh,
}

impl Setup {
    async fn start() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&policy).unwrap();
        write(&policy, "access.yaml", ACCESS);
        let control = start(ServeConfig {
            policy_dir: policy.clone(),
            state_dir: state.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            admin: "127.0.0.1:0".parse().unwrap(),
            ..ServeConfig::default()
        })
        .await
        .unwrap();
        let addr = control.api_addr.to_string();
        let mesh = |identity: &'static str| {
            let config = MeshConfig::new(
                ControlAddr::parse(&addr).unwrap(),
                join_token(&state, identity, &[]),
            )
            .workload(identity);
            async move { Mesh::start(config).await.unwrap() }
        };
        let server = mesh(SERVER).await;
        let buyer = mesh("bookbuyer/bookbuyer").await;
        let thief = mesh("bookthief/bookthief").await;
        // The server knows the buyer is allowed (the revocation watch starts from there).
        policy_until(&server, "the buyer admitted", WAIT, |p| {
            p.snapshot.admits_any(server.identity(), buyer.identity())
        })
        .await;
        Setup {
            _dir: dir,
            policy,
            control,
            server,
            buyer,
            thief,
        }
    }

    /// Serves [`app`] with `options`; returns its address and what the app reports.
    async fn serve(&self, options: ServeOptions) -> Served {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (reports, reported) = mpsc::unbounded_channel();
        let mesh = self.server.clone();
        let task = tokio::spawn(async move {
            smi_server::serve_with(listener, &mesh, app(reports), &options).await
        });
        Served {
            addr,
            reported,
            task,
        }
    }

    async fn stop(self) {
        self.control.shutdown().await;
    }
}

struct Served {
    addr: SocketAddr,
    /// What the app's handlers saw of upgrades.
    reported: mpsc::UnboundedReceiver<String>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Served {
    async fn report(&mut self) -> String {
        tokio::time::timeout(WAIT, self.reported.recv())
            .await
            .expect("a report from the app")
            .unwrap()
    }
}

/// `/`: 200 "ok". `/slow`: eight chunks, 100 ms apart. `/ws`: a WebSocket-style upgrade when
/// the server offers one (101, then an echo of the upgraded stream), else 426. `/force`: 101
/// whatever the server offers, reporting what became of the upgrade.
fn app(reports: mpsc::UnboundedSender<String>) -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/slow", get(slow))
        .route("/ws", get(ws))
        .route("/force", get(force))
        .with_state(reports)
}

async fn slow() -> Body {
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(1);
    tokio::spawn(async move {
        for i in 0..8 {
            // Pacing: the response is meant to take 800 ms, well past the idle timeout.
            tokio::time::sleep(Duration::from_millis(100)).await;
            if tx.send(Ok(Bytes::from(format!("{i}")))).await.is_err() {
                return;
            }
        }
    });
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}

async fn ws(
    State(reports): State<mpsc::UnboundedSender<String>>,
    request: AxumRequest,
) -> Response<Body> {
    let Some(upgrade) = request.extensions().get::<OnUpgrade>().cloned() else {
        let _ = reports.send("no upgrade offered".into());
        return Response::builder()
            .status(StatusCode::UPGRADE_REQUIRED)
            .body(Body::from("no upgrade offered"))
            .unwrap();
    };
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                let _ = reports.send(format!("upgrade failed: {e}"));
                return;
            }
        };
        let _ = reports.send("upgraded".into());
        let (mut read, mut write) = tokio::io::split(TokioIo::new(upgraded));
        let copied = tokio::io::copy(&mut read, &mut write).await;
        let _ = reports.send(format!("echo ended: {copied:?}"));
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .body(Body::empty())
        .unwrap()
}

async fn force(
    State(reports): State<mpsc::UnboundedSender<String>>,
    mut request: AxumRequest,
) -> Response<Body> {
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let outcome = match upgrade.await {
            Ok(_) => "upgraded".to_owned(),
            Err(e) => format!("upgrade failed: {e}"),
        };
        let _ = reports.send(outcome);
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .body(Body::empty())
        .unwrap()
}

// === clients ===

/// An mTLS connection to `addr` with `mesh`'s certificate, offering only `alpn`.
async fn mtls(mesh: &Mesh, addr: SocketAddr, alpn: &[u8]) -> TlsStream<TcpStream> {
    let mut config = (*mesh.client_tls()).clone();
    config.alpn_protocols = vec![alpn.to_vec()];
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap()
}

/// Reads until the server closes the connection (end of stream or an error), at most `WAIT`;
/// returns what arrived before.
async fn until_closed<S: AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(WAIT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server did not close the connection within {WAIT:?} (got {:?})",
        String::from_utf8_lossy(&got)
    );
    got
}

/// Reads an HTTP/1.1 response head.
async fn head<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    tokio::time::timeout(WAIT, async {
        while !got.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut byte).await.unwrap();
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
            got.push(byte[0]);
        }
    })
    .await
    .expect("a response head");
    String::from_utf8(got).unwrap()
}

/// A hyper client connection of either version; `ended` resolves when the server closes it.
struct Client {
    send: Sender,
    ended: tokio::task::JoinHandle<()>,
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

impl Client {
    async fn open(mesh: &Mesh, addr: SocketAddr, h2: bool) -> Client {
        if h2 {
            let io = TokioIo::new(mtls(mesh, addr, b"h2").await);
            let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            let ended = tokio::spawn(async move {
                let _ = conn.await;
            });
            Client {
                send: Sender::H2(send),
                ended,
            }
        } else {
            let io = TokioIo::new(mtls(mesh, addr, b"http/1.1").await);
            let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            let ended = tokio::spawn(async move {
                let _ = conn.await;
            });
            Client {
                send: Sender::H1(send),
                ended,
            }
        }
    }

    /// GETs `path`; the status and the whole body.
    async fn get(&mut self, path: &str) -> hyper::Result<(StatusCode, String)> {
        let request = Request::get(path)
            .header("host", "bookstore.bookstore")
            .body(Empty::new())
            .unwrap();
        let response = match &mut self.send {
            Sender::H1(send) => {
                send.ready().await?;
                send.send_request(request).await?
            }
            Sender::H2(send) => {
                send.ready().await?;
                send.send_request(request).await?
            }
        };
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// Waits for the server to close the connection, at most `WAIT`.
    async fn closed(self) {
        let Client { send, ended } = self;
        tokio::time::timeout(WAIT, ended)
            .await
            .expect("the server closes the connection within 5 s")
            .unwrap();
        drop(send);
    }
}

// === timeouts ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_sends_a_client_hello_is_dropped_after_the_handshake_timeout() {
    let setup = Setup::start().await;
    let served = setup
        .serve(ServeOptions::default().handshake_timeout(SHORT))
        .await;
    let mut tcp = TcpStream::connect(served.addr).await.unwrap();
    let opened = Instant::now();
    let got = until_closed(&mut tcp).await;
    let took = opened.elapsed();
    assert!(got.is_empty(), "{got:?}");
    assert!(took >= SHORT, "closed after {took:?}, before the timeout");
    setup.stop().await;
}

/// Sends the start of a request head and nothing more; returns what came back before the server
/// closed the connection, and how long that took.
async fn half_a_head(tls: &mut TlsStream<TcpStream>) -> (String, Duration) {
    let started = Instant::now();
    tls.write_all(b"GET / HTTP/1.1\r\nhost: bookstore.bookstore\r\nx-more: ")
        .await
        .unwrap();
    let got = String::from_utf8(until_closed(tls).await).unwrap();
    (got, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_half_a_request_head_is_dropped_after_the_header_read_timeout() {
    let setup = Setup::start().await;
    let served = setup
        .serve(ServeOptions::default().header_read_timeout(Some(SHORT)))
        .await;
    // As the first request of a connection.
    let mut tls = mtls(&setup.buyer, served.addr, b"http/1.1").await;
    let (got, took) = half_a_head(&mut tls).await;
    assert!(took >= SHORT, "closed after {took:?}, before the timeout");
    assert!(got.is_empty(), "{got:?}");
    // As the second: hyper's own header timer closes it (the idle timeout is 5 min away).
    let mut tls = mtls(&setup.buyer, served.addr, b"http/1.1").await;
    tls.write_all(b"GET / HTTP/1.1\r\nhost: bookstore.bookstore\r\n\r\n")
        .await
        .unwrap();
    let answer = head(&mut tls).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut ok = [0u8; 2];
    tls.read_exact(&mut ok).await.unwrap();
    let (got, took) = half_a_head(&mut tls).await;
    assert!(took >= SHORT, "closed after {took:?}, before the timeout");
    assert!(got.is_empty(), "{got:?}");
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_nothing_after_the_handshake_is_dropped_after_the_header_read_timeout()
{
    let setup = Setup::start().await;
    let served = setup
        .serve(ServeOptions::default().header_read_timeout(Some(SHORT)))
        .await;
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let mut tls = mtls(&setup.buyer, served.addr, alpn).await;
        let started = Instant::now();
        let got = until_closed(&mut tls).await;
        let took = started.elapsed();
        assert!(got.is_empty(), "{got:?}");
        assert!(
            took >= SHORT,
            "{alpn:?}: closed after {took:?}, before the timeout"
        );
    }
    // HTTP/2 with the preface and settings exchanged, but no request: GOAWAY, then closed.
    let client = Client::open(&setup.buyer, served.addr, true).await;
    let started = Instant::now();
    client.closed().await;
    let took = started.elapsed();
    assert!(took >= SHORT, "closed after {took:?}, before the timeout");
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let setup = Setup::start().await;
    // The header read timeout stays at its default (10 s): the idle timeout closes first.
    let served = setup
        .serve(ServeOptions::default().idle_timeout(Some(SHORT)))
        .await;
    for h2 in [false, true] {
        let mut client = Client::open(&setup.buyer, served.addr, h2).await;
        let asked = Instant::now();
        assert_eq!(
            client.get("/").await.unwrap(),
            (StatusCode::OK, "ok".into())
        );
        assert_eq!(
            client.get("/").await.unwrap(),
            (StatusCode::OK, "ok".into()),
            "h2 {h2}: kept alive"
        );
        client.closed().await;
        let took = asked.elapsed();
        assert!(
            took >= SHORT,
            "h2 {h2}: closed after {took:?}, before the timeout"
        );
    }
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_is_not_cut_by_the_idle_timeout() {
    let setup = Setup::start().await;
    let served = setup
        .serve(ServeOptions::default().idle_timeout(Some(SHORT)))
        .await;
    for h2 in [false, true] {
        let mut client = Client::open(&setup.buyer, served.addr, h2).await;
        let asked = Instant::now();
        let (status, body) = client.get("/slow").await.unwrap();
        let took = asked.elapsed();
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "01234567"),
            "h2 {h2}"
        );
        // Longer than two idle periods (the GOAWAY, then the cut) with the response streaming.
        assert!(
            took >= SHORT * 2,
            "h2 {h2}: the response took only {took:?}"
        );
        // And once it is done, the connection is idle and closed.
        client.closed().await;
    }
    setup.stop().await;
}

// === connection limits ===

/// Whether `mesh` gets a 200 on a new HTTP/1.1 connection (the client stays open).
async fn served_on_a_new_connection(mesh: &Mesh, addr: SocketAddr) -> Option<Client> {
    let mut client = Client::open(mesh, addr, false).await;
    match client.get("/").await {
        Ok((StatusCode::OK, _)) => Some(client),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_over_its_connection_limit_is_closed_and_other_peers_still_connect() {
    let setup = Setup::start().await;
    let served = setup
        .serve(ServeOptions::default().max_connections_per_peer(2))
        .await;
    let addr = served.addr;
    let first = served_on_a_new_connection(&setup.buyer, addr).await;
    let mut second = served_on_a_new_connection(&setup.buyer, addr).await;
    assert!(
        first.is_some() && second.is_some(),
        "two connections are within the limit"
    );

    // The third completes its handshake and is closed without an answer.
    let mut third = mtls(&setup.buyer, addr, b"http/1.1").await;
    let _ = third
        .write_all(b"GET / HTTP/1.1\r\nhost: bookstore.bookstore\r\n\r\n")
        .await;
    let got = until_closed(&mut third).await;
    assert!(
        got.is_empty(),
        "answered over the limit: {:?}",
        String::from_utf8_lossy(&got)
    );

    // Another identity has slots of its own.
    let thief = served_on_a_new_connection(&setup.thief, addr).await;
    assert!(
        thief.is_some(),
        "another peer is not limited by the buyer's connections"
    );

    // Closing one of the buyer's connections frees its slot (once the server has seen it close).
    drop(first);
    let freed = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(client) = served_on_a_new_connection(&setup.buyer, addr).await {
                return client;
            }
        }
    })
    .await;
    assert!(
        freed.is_ok(),
        "no slot freed within 5 s of closing a connection"
    );
    let second = second.as_mut().unwrap();
    assert_eq!(second.get("/").await.unwrap().0, StatusCode::OK);
    setup.stop().await;
}

// === upgrades ===

/// A WebSocket-style HTTP/1.1 upgrade request for `path`.
fn upgrade(path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nhost: bookstore.bookstore\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_request_to_a_default_server_is_answered_without_upgrading() {
    let setup = Setup::start().await;
    let mut served = setup.serve(ServeOptions::default()).await;
    let mut tls = mtls(&setup.buyer, served.addr, b"http/1.1").await;
    tls.write_all(&upgrade("/ws")).await.unwrap();
    let answer = head(&mut tls).await;
    assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");
    assert_eq!(served.report().await, "no upgrade offered");
    // The connection is still plain HTTP/1.1.
    let mut rest = [0u8; "no upgrade offered".len()];
    tls.read_exact(&mut rest).await.unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nhost: bookstore.bookstore\r\n\r\n")
        .await
        .unwrap();
    let answer = head(&mut tls).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // An app that answers 101 anyway cannot have the connection: its upgrade fails, and the
    // connection ends after the 101 (nothing is tunnelled).
    let mut tls = mtls(&setup.buyer, served.addr, b"http/1.1").await;
    tls.write_all(&upgrade("/force")).await.unwrap();
    let got = String::from_utf8(until_closed(&mut tls).await).unwrap();
    assert!(got.starts_with("HTTP/1.1 101"), "{got}");
    let report = served.report().await;
    assert!(report.starts_with("upgrade failed"), "{report}");
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_stream_is_closed_when_the_callers_access_is_revoked() {
    let setup = Setup::start().await;
    let mut served = setup.serve(ServeOptions::default().upgrades(true)).await;
    let mut tls = mtls(&setup.buyer, served.addr, b"http/1.1").await;
    tls.write_all(&upgrade("/ws")).await.unwrap();
    let answer = head(&mut tls).await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    assert_eq!(served.report().await, "upgraded");
    // The upgraded stream is the application's: an echo.
    tls.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    tokio::time::timeout(WAIT, tls.read_exact(&mut echo))
        .await
        .expect("an echo")
        .unwrap();
    assert_eq!(&echo, b"ping");

    // The buyer loses its access: the stream the application holds is shut down.
    let revoked = Instant::now();
    std::fs::remove_file(setup.policy.join("access.yaml")).unwrap();
    let got = until_closed(&mut tls).await;
    assert!(got.is_empty(), "{got:?}");
    assert!(revoked.elapsed() < WAIT);
    let report = served.report().await;
    assert!(report.starts_with("echo ended"), "{report}");
    setup.stop().await;
}
