//! The data plane end to end, in one test process: when a caller's access is removed, its open
//! connections and long-lived streams are refused or closed within a second, and access written
//! back is granted again. A real control service, real workloads (`Mesh`), real mTLS on
//! 127.0.0.1, policy changed by writing files. Every wait is on an event or a condition, bounded
//! by 5 s.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use axum::Router;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use smi_client::MeshClient;
use smi_test_util::bookstore::{
    self, ACCESS, BUY, VERSIONS, WAIT, backends, caller, get, until_response,
};
use smi_test_util::{Control, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_applies_to_open_connections_within_a_second() {
    let mut cluster = bookstore::control(50, 50).await;
    let _bookstores = backends(&cluster).await;
    let buyer = caller(&cluster, "bookbuyer/bookbuyer", VERSIONS).await;
    let client = MeshClient::new(buyer);
    // Connections to both versions are open and pooled.
    until_response(&client, BUY, |(_, b)| b == "bookstore-v1").await;
    until_response(&client, BUY, |(_, b)| b == "bookstore-v2").await;

    cluster.remove_policy("access.yaml");
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
    cluster.write_policy("access.yaml", ACCESS);
    until_response(&client, BUY, |(s, _)| *s == StatusCode::OK).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_lived_stream_is_closed_when_its_caller_loses_access() {
    let mut cluster = bookstore::control(100, 0).await;
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
    let _server = Server::start(
        &cluster,
        "bookstore/bookstore",
        &["bookstore/bookstore-v1"],
        router,
    )
    .await;
    let buyer = caller(&cluster, "bookbuyer/bookbuyer", &["bookstore-v1"]).await;
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
    cluster.remove_policy("access.yaml");
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
    cluster.shutdown().await;
}
