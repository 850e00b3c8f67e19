//! Malformed bytes from the network never crash a workload or the control service. Both run as
//! real processes (`smi-conformance-app`, `smi-test-control`); the test throws at their TLS
//! ports random bytes, mangled TLS ClientHellos, and, after a valid mTLS handshake, malformed
//! HTTP/1.1 and HTTP/2. Afterwards both processes are alive, printed no panic, and serve a valid
//! request (a meshed GET; a new workload's enrollment).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use smi_client::{Mesh, MeshClient};
use smi_test_util::bookstore::ACCESS;
use smi_test_util::tls::{connect, with_alpn};
use smi_test_util::{Control, LiveControl, policy_until};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(20);
/// How long each hostile connection waits for the server's answer (or for it to hang up).
const LINGER: Duration = Duration::from_secs(2);

/// Writes `bytes`, then reads whatever comes back for up to `LINGER`; the outcome does not
/// matter, only that the server survives it.
async fn throw<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, bytes: &[u8]) {
    let _ = stream.write_all(bytes).await;
    let _ = stream.flush().await;
    let mut sink = vec![0; 64 * 1024];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// Random bytes of random lengths, and a few plaintext requests, at a TLS port.
fn garbage(rng: &mut StdRng) -> Vec<Vec<u8>> {
    let mut inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"GET / HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        vec![0; 16 * 1024],
        // A TLS record header announcing a huge record, then nothing.
        vec![0x16, 0x03, 0x01, 0xff, 0xff],
    ];
    for _ in 0..40 {
        let len = rng.random_range(1..4096);
        inputs.push((0..len).map(|_| rng.random()).collect());
    }
    inputs
}

/// The ClientHello a real mesh client sends, truncated or with bytes flipped.
fn mangled_hellos(config: Arc<rustls::ClientConfig>, rng: &mut StdRng) -> Vec<Vec<u8>> {
    let name = rustls::pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let mut connection = rustls::ClientConnection::new(config, name).unwrap();
    let mut hello = Vec::new();
    connection.write_tls(&mut hello).unwrap();
    let mut inputs = Vec::new();
    for i in 0..40 {
        let mut bad = hello.clone();
        if i % 2 == 0 {
            bad.truncate(rng.random_range(1..hello.len()));
        } else {
            for _ in 0..rng.random_range(1..8) {
                let at = rng.random_range(0..bad.len());
                bad[at] ^= rng.random_range(1..=255u8);
            }
        }
        inputs.push(bad);
    }
    inputs
}

/// Malformed HTTP/1.1, sent inside a valid mTLS session.
fn bad_http1(rng: &mut StdRng) -> Vec<Vec<u8>> {
    let mut inputs: Vec<Vec<u8>> = [
        "GARBAGE\r\n\r\n",
        "GET /buy-a-book/new HTTP/1.1\r\nhost: bookstore-v1.bookstore\r\nno colon here\r\n\r\n",
        "GET /buy-a-book/new HTTP/9.9\r\nhost: bookstore-v1.bookstore\r\n\r\n",
        "POST /buy-a-book/new HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        "POST /buy-a-book/new HTTP/1.1\r\nhost: x\r\ncontent-length: -1\r\n\r\n",
        "POST /buy-a-book/new HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello",
        "GET http://[::1 HTTP/1.1\r\n\r\n",
        "GET /buy-a-book/new HTTP/1.1\r\nhost: \u{0}\u{1}\r\n\r\n",
        "\u{0}\u{1}\u{2}\u{3}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let mut huge = b"GET /buy-a-book/new HTTP/1.1\r\nhost: x\r\nx-big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 512 * 1024));
    huge.extend(b"\r\n\r\n");
    inputs.push(huge);
    for _ in 0..10 {
        let len = rng.random_range(1..2048);
        inputs.push((0..len).map(|_| rng.random()).collect());
    }
    inputs
}

/// An HTTP/2 frame: length, type, flags, stream id, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend(stream.to_be_bytes());
    f.extend(payload);
    f
}

/// The HTTP/2 preface, then malformed frames, inside a valid mTLS session.
fn bad_http2(rng: &mut StdRng) -> Vec<Vec<u8>> {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let settings = frame(0x4, 0, 0, &[]);
    let frames = [
        frame(0x4, 0, 0, &[0; 5]),                    // SETTINGS of a bad length
        frame(0x1, 0x4 | 0x1, 1, &[0xff; 32]),        // HEADERS with an invalid HPACK block
        frame(0x0, 0x1, 0, b"data on stream 0"),      // DATA on the connection stream
        frame(0x8, 0, 0, &[0; 4]),                    // WINDOW_UPDATE of 0
        frame(0x8, 0, 1, &[0xff; 4]),                 // WINDOW_UPDATE overflow on an idle stream
        frame(0x3, 0, 1, &[0; 3]),                    // RST_STREAM of a bad length
        frame(0x6, 0, 1, &[0; 8]),                    // PING on a stream
        frame(0x1, 0x4 | 0x1, 2, &[0x82, 0x84]),      // HEADERS on an even (server) stream id
        vec![0xff, 0xff, 0xff, 0x0, 0x0, 0, 0, 0, 1], // a frame far over the maximum size
    ];
    let mut inputs: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| [PREFACE, &settings, f].concat())
        .collect();
    for _ in 0..10 {
        let len = rng.random_range(1..2048);
        let noise: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        inputs.push([PREFACE, &settings, &noise].concat());
    }
    inputs
}

async fn tcp(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

async fn mtls(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    connect(addr, config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_tls_and_http_never_crash_a_workload_or_the_control() {
    let live = LiveControl::start(&[("access.yaml", ACCESS)], &[]).await;
    let app = live
        .app(
            "bookstore",
            "bookstore/bookstore",
            &["bookstore/bookstore-v1"],
        )
        .await;
    let mesh_addr = app.addrs[0];
    let control_addr = live.control.addrs[0];

    let join = |identity: &str| {
        live.config(
            identity,
            live.token(identity, &[]),
            &["bookstore/bookstore-v1"],
        )
    };
    let buyer = Mesh::start(join("bookbuyer/bookbuyer")).await.unwrap();
    let tls = buyer.client_tls();

    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut attacks = tokio::task::JoinSet::new();
    for target in [mesh_addr, control_addr] {
        for bytes in garbage(&mut rng)
            .into_iter()
            .chain(mangled_hellos(tls.clone(), &mut rng))
        {
            attacks.spawn(async move { throw(tcp(target).await, &bytes).await });
        }
    }
    let (h1, h2) = (with_alpn(&tls, b"http/1.1"), with_alpn(&tls, b"h2"));
    for bytes in bad_http1(&mut rng) {
        let h1 = h1.clone();
        attacks.spawn(async move { throw(mtls(mesh_addr, h1).await, &bytes).await });
    }
    for bytes in bad_http2(&mut rng) {
        let h2 = h2.clone();
        attacks.spawn(async move { throw(mtls(mesh_addr, h2).await, &bytes).await });
    }
    let thrown = attacks.len();
    tokio::time::timeout(WAIT, async {
        while let Some(done) = attacks.join_next().await {
            done.unwrap();
        }
    })
    .await
    .expect("every hostile connection ends within 20 s");
    assert!(thrown > 200, "{thrown}");

    // Both still serve: a meshed request is answered, and a new workload enrolls.
    policy_until(&buyer, "the app's endpoint known", WAIT, |p| {
        !p.endpoints("bookstore", "bookstore-v1").is_empty()
    })
    .await;
    let response = MeshClient::<Full<Bytes>>::new(buyer.clone())
        .send(
            Request::get("http://bookstore-v1.bookstore/buy-a-book/new")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body().collect().await.unwrap();
    Mesh::start(join("bookbuyer/bookbuyer")).await.unwrap();

    // Both are alive and printed no panic.
    live.stop(vec![app]).await;
}
