//! The protocol on the wire, below kube-rs: a watch is a chunked HTTP/1.1 body of one JSON
//! event per line that `break_watches` cuts off without its last chunk, and HTTP/2 works too.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::WAIT;
use crate::kube_api::FakeApiServer;
use crate::raw;

/// Reads from `tcp` until `got` holds `needle`, within 10 s.
async fn read_until(tcp: &mut TcpStream, got: &mut Vec<u8>, needle: &str) {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(WAIT, async {
        while !String::from_utf8_lossy(got).contains(needle) {
            let n = tcp.read(&mut buf).await.expect("reading the watch");
            assert!(
                n > 0,
                "closed before {needle:?}: {:?}",
                String::from_utf8_lossy(got)
            );
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("waiting for {needle:?}"));
}

#[tokio::test]
async fn a_watch_is_chunked_json_lines_cut_off_by_break_watches() {
    let server = FakeApiServer::start().await;
    server.apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "first"}}));
    let mut tcp = TcpStream::connect(server.addr()).await.expect("connected");
    let request = format!(
        "GET /api/v1/namespaces/default/configmaps?watch=1&resourceVersion=0 HTTP/1.1\r\nHost: fake\r\nAuthorization: Bearer {}\r\n\r\n",
        server.bearer_token()
    );
    tcp.write_all(request.as_bytes()).await.expect("sent");
    let head = raw::head(&mut tcp).await.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");

    let mut got = Vec::new();
    read_until(&mut tcp, &mut got, "\"first\"").await;
    server.apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "second"}}));
    read_until(&mut tcp, &mut got, "\"second\"").await;
    let text = String::from_utf8_lossy(&got).into_owned();
    let events: Vec<Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or(""),
                e["object"]["metadata"]["name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(kinds, [("ADDED", "first"), ("ADDED", "second")]);

    server.break_watches();
    let rest = raw::until_closed(&mut tcp).await;
    assert!(
        !String::from_utf8_lossy(&rest).contains("0\r\n\r\n"),
        "no final chunk: the body was cut off"
    );
    assert!(
        server.open_watches().is_empty(),
        "{:?}",
        server.open_watches()
    );
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served() {
    let server = FakeApiServer::start().await;
    let tcp = TcpStream::connect(server.addr()).await.expect("connected");
    let (mut send, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("an HTTP/2 handshake");
    tokio::spawn(connection);
    let request = http::Request::get("/api/v1/namespaces/default")
        .header("authorization", format!("Bearer {}", server.bearer_token()))
        .body(Empty::<Bytes>::new())
        .expect("a request");
    let response = send.send_request(request).await.expect("answered");
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    let namespace: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(
        (
            namespace["kind"].as_str(),
            namespace["status"]["phase"].as_str()
        ),
        (Some("Namespace"), Some("Active"))
    );
}
