//! A meshed server and HTTP/1.1 upgrades (`smi_server::ServeOptions::upgrades`), end to end in
//! one test process: a real control service, real workloads, real mTLS on 127.0.0.1. A default
//! server upgrades nothing; one that allows upgrades shuts an upgraded stream down when the
//! caller loses access.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request as AxumRequest, State};
use axum::routing::get;
use http::{Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use smi_server::ServeOptions;
use smi_test_util::bookstore::Shop;
use smi_test_util::raw::{WAIT, head, mtls, until_closed};
use smi_test_util::{Control, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// [`app`] served by the bookstore's workload, and what the app reports.
struct Served {
    addr: SocketAddr,
    /// What the app's handlers saw of upgrades.
    reported: mpsc::UnboundedReceiver<String>,
    _server: Server,
}

impl Served {
    async fn report(&mut self) -> String {
        tokio::time::timeout(WAIT, self.reported.recv())
            .await
            .expect("a report from the app")
            .unwrap()
    }
}

/// The bookstore's workload serving [`app`] with `options`.
async fn serve(setup: &Shop, options: ServeOptions) -> Served {
    let (reports, reported) = mpsc::unbounded_channel();
    let server = Server::on(setup.server.clone(), &[], app(reports), options).await;
    Served {
        addr: server.addr,
        reported,
        _server: server,
    }
}

/// `/`: 200 "ok". `/ws`: a WebSocket-style upgrade when the server offers one (101, then an
/// echo of the upgraded stream), else 426. `/force`: 101 whatever the server offers, reporting
/// what became of the upgrade.
fn app(reports: mpsc::UnboundedSender<String>) -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/ws", get(ws))
        .route("/force", get(force))
        .with_state(reports)
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

/// A WebSocket-style HTTP/1.1 upgrade request for `path`.
fn upgrade(path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nhost: bookstore.bookstore\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_request_to_a_default_server_is_answered_without_upgrading() {
    let setup = Shop::start().await;
    let mut served = serve(&setup, ServeOptions::default()).await;
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
    let setup = Shop::start().await;
    let mut served = serve(&setup, ServeOptions::default().upgrades(true)).await;
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
    setup.control.remove_policy("access.yaml");
    let got = until_closed(&mut tls).await;
    assert!(got.is_empty(), "{got:?}");
    assert!(revoked.elapsed() < WAIT);
    let report = served.report().await;
    assert!(report.starts_with("echo ended"), "{report}");
    setup.stop().await;
}
