//! The SMI conformance suite end to end, traffic access (`../shared/smi/CONFORMANCE.md`, every step): a
//! real control service in file mode, the suite's test app as real processes
//! (`smi-conformance-app`), real mTLS on 127.0.0.1, policy changed by writing and deleting files
//! with the suite's own manifests ([`smi_tests::live`]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use serde_json::json;
use smi_tests::live::{APP_ACCESS, Suite, list, url};
/// TA-1.2.1 and TA-1.2.5: one GET /echo from app-a to app-b fails with an HTTP status.
async fn assert_blocked(suite: &Suite) {
    suite.clear_metrics().await;
    let target = url("app-b", "/echo");
    assert_eq!(suite.call_from_a("GET", &target).await, 403);
    let a = suite.metrics("app-a").await;
    assert_eq!(list(&a, "RespSucceeded").len(), 0, "{a}");
    assert_eq!(list(&a, "RespFailed").len(), 1, "{a}");
    assert_eq!(list(&a, "RespFailed")[0]["URL"], target.as_str());
    assert_eq!(suite.received("app-b").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_access_suite() {
    let started = Instant::now();
    let mut suite = Suite::start(&APP_ACCESS, false).await;
    // TA-1.2.1: denied by default.
    assert_blocked(&suite).await;
    // TA-1.2.2: the TCPRoute (all ports) and the TrafficTarget service-a -> service-b.
    suite
        .apply("conformance/traffic-access/04-install.yaml")
        .await;
    // TA-1.2.3: allowed, delivered exactly once, with the ServiceName header.
    suite.clear_metrics().await;
    let target = url("app-b", "/echo");
    assert_eq!(suite.call_from_a("GET", &target).await, 200);
    let a = suite.metrics("app-a").await;
    assert_eq!(
        (
            list(&a, "RespSucceeded").len(),
            list(&a, "RespFailed").len()
        ),
        (1, 0),
        "{a}"
    );
    assert_eq!(list(&a, "RespSucceeded")[0]["URL"], target.as_str());
    let b = suite.metrics("app-b").await;
    assert_eq!(list(&b, "ReqReceived"), vec![json!("app-a")]);
    // TA-1.2.4: delete both objects.
    suite
        .delete(&[
            ("TCPRoute", "service-tcp-route"),
            ("TrafficTarget", "service-targets"),
        ])
        .await;
    // TA-1.2.5: blocked again, on connections that were open and allowed before.
    assert_blocked(&suite).await;
    eprintln!(
        "traffic access: 7 steps in {:.2} s; slowest enforcement {:?}",
        started.elapsed().as_secs_f64(),
        suite.slowest
    );
    suite.shutdown().await;
}
