//! A meshed server's timeouts (`smi_server::ServeOptions`), end to end in one test process: a
//! real control service, real workloads, real mTLS on 127.0.0.1, and clients that misbehave byte
//! by byte. Timeouts are configured short (300 ms); every test checks both that the server closed
//! the connection within 5 s and that it did not close it before the timeout, measured on the
//! client's clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use http::StatusCode;
use smi_server::ServeOptions;
use smi_test_util::Server;
use smi_test_util::bookstore::Shop;
use smi_test_util::raw::{Client, head, mtls, until_closed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;

/// The timeout the tests configure.
const SHORT: Duration = Duration::from_millis(300);

/// How much earlier than ours the server's clock for a timeout may start: it starts at its
/// accept or its end of the handshake, a moment before this side reads its own clock (seen:
/// 299.1 ms measured for a 300 ms timeout on a loaded machine). Far below a timeout, so a server
/// that closed at once still fails.
const CLOCK_SLACK: Duration = Duration::from_millis(20);

/// The bookstore's workload serving [`app`] with `options`.
async fn serve(setup: &Shop, options: ServeOptions) -> Server {
    Server::on(setup.server.clone(), &[], app(), options).await
}

/// `/`: 200 "ok". `/slow`: eight chunks, 100 ms apart.
fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/slow", get(slow))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_sends_a_client_hello_is_dropped_after_the_handshake_timeout() {
    let setup = Shop::start().await;
    let served = serve(&setup, ServeOptions::default().handshake_timeout(SHORT)).await;
    let mut tcp = TcpStream::connect(served.addr).await.unwrap();
    let opened = Instant::now();
    let got = until_closed(&mut tcp).await;
    let took = opened.elapsed();
    assert!(got.is_empty(), "{got:?}");
    assert!(
        took >= SHORT - CLOCK_SLACK,
        "closed after {took:?}, before the timeout"
    );
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
    let setup = Shop::start().await;
    let served = serve(
        &setup,
        ServeOptions::default().header_read_timeout(Some(SHORT)),
    )
    .await;
    // As the first request of a connection.
    let mut tls = mtls(&setup.buyer, served.addr, b"http/1.1").await;
    let (got, took) = half_a_head(&mut tls).await;
    assert!(
        took >= SHORT - CLOCK_SLACK,
        "closed after {took:?}, before the timeout"
    );
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
    assert!(
        took >= SHORT - CLOCK_SLACK,
        "closed after {took:?}, before the timeout"
    );
    assert!(got.is_empty(), "{got:?}");
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_nothing_after_the_handshake_is_dropped_after_the_header_read_timeout()
{
    let setup = Shop::start().await;
    let served = serve(
        &setup,
        ServeOptions::default().header_read_timeout(Some(SHORT)),
    )
    .await;
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let mut tls = mtls(&setup.buyer, served.addr, alpn).await;
        let started = Instant::now();
        let got = until_closed(&mut tls).await;
        let took = started.elapsed();
        assert!(got.is_empty(), "{got:?}");
        assert!(
            took >= SHORT - CLOCK_SLACK,
            "{alpn:?}: closed after {took:?}, before the timeout"
        );
    }
    // HTTP/2 with the preface and settings exchanged, but no request: GOAWAY, then closed.
    let client = Client::open(&setup.buyer, served.addr, true).await;
    let started = Instant::now();
    client.closed().await;
    let took = started.elapsed();
    assert!(
        took >= SHORT - CLOCK_SLACK,
        "closed after {took:?}, before the timeout"
    );
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let setup = Shop::start().await;
    // The header read timeout stays at its default (10 s): the idle timeout closes first.
    let served = serve(&setup, ServeOptions::default().idle_timeout(Some(SHORT))).await;
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
            took >= SHORT - CLOCK_SLACK,
            "h2 {h2}: closed after {took:?}, before the timeout"
        );
    }
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_is_not_cut_by_the_idle_timeout() {
    let setup = Shop::start().await;
    let served = serve(&setup, ServeOptions::default().idle_timeout(Some(SHORT))).await;
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
            took >= SHORT * 2 - CLOCK_SLACK,
            "h2 {h2}: the response took only {took:?}"
        );
        // And once it is done, the connection is idle and closed.
        client.closed().await;
    }
    setup.stop().await;
}
