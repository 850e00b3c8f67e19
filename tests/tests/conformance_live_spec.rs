//! The SMI conformance suite end to end, traffic spec (`../shared/smi/CONFORMANCE.md`, every step): a
//! real control service in file mode, the suite's test app as real processes
//! (`smi-conformance-app`), real mTLS on 127.0.0.1, policy changed by writing and deleting files
//! with the suite's own manifests ([`smi_tests::live`]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use smi_tests::live::{APP_ACCESS, Suite, list, url};
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_spec_suite() {
    let started = Instant::now();
    let mut suite = Suite::start(&APP_ACCESS, false).await;
    // TSC-1.2.1: only /metrics, any method (top-level `matches` under v1alpha4; port "9091").
    suite
        .apply("conformance/traffic-spec/03-install.yaml")
        .await;
    // TSC-1.2.2: /metrics allowed, /echo denied.
    suite.clear_metrics().await;
    assert_eq!(
        suite.call_from_a("GET", &url("app-b", "/metrics")).await,
        200
    );
    assert_eq!(suite.call_from_a("GET", &url("app-b", "/echo")).await, 403);
    let a = suite.metrics("app-a").await;
    let (ok, failed) = (list(&a, "RespSucceeded"), list(&a, "RespFailed"));
    assert_eq!((ok.len(), failed.len()), (1, 1), "{a}");
    assert!(ok[0]["URL"].as_str().unwrap().ends_with("/metrics"));
    assert!(failed[0]["URL"].as_str().unwrap().ends_with("/echo"));
    // TSC-1.2.3: any path, GET only (the same match replaced in place).
    suite
        .apply("conformance/traffic-spec/05-install.yaml")
        .await;
    // TSC-1.2.4: GET allowed, POST denied.
    suite.clear_metrics().await;
    assert_eq!(suite.call_from_a("GET", &url("app-b", "/echo")).await, 200);
    assert_eq!(suite.call_from_a("POST", &url("app-b", "/echo")).await, 403);
    let a = suite.metrics("app-a").await;
    let (ok, failed) = (list(&a, "RespSucceeded"), list(&a, "RespFailed"));
    assert_eq!((ok.len(), failed.len()), (1, 1), "{a}");
    assert_eq!(ok[0]["Method"], "GET");
    assert_eq!(failed[0]["Method"], "POST");
    eprintln!(
        "traffic spec: 6 steps in {:.2} s; slowest enforcement {:?}",
        started.elapsed().as_secs_f64(),
        suite.slowest
    );
    suite.shutdown().await;
}
