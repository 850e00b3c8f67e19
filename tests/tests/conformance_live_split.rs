//! The SMI conformance suite end to end, traffic split (`../shared/smi/CONFORMANCE.md`, every step): a
//! real control service in file mode, the suite's test app as real processes
//! (`smi-conformance-app`), real mTLS on 127.0.0.1, policy changed by writing and deleting files
//! with the suite's own manifests ([`smi_tests::live`]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use smi_tests::live::{APP_SPLIT, Suite, url};
/// The split scenario: `n` sequential calls from app-a to app-svc; (app-b, app-c) received.
async fn split_traffic(suite: &Suite, n: usize) -> (usize, usize) {
    suite.clear_metrics().await;
    for _ in 0..n {
        assert_eq!(
            suite.call_from_a("GET", &url("app-svc", "/echo")).await,
            200
        );
    }
    (suite.received("app-b").await, suite.received("app-c").await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_split_suite() {
    let started = Instant::now();
    // APP-SPLIT has no TrafficTargets: the suite needs access control off (permissive mode).
    let mut suite = Suite::start(&APP_SPLIT, true).await;
    // TS-1.2.1: no split: app-svc balances over b and c.
    let (b, c) = split_traffic(&suite, 50).await;
    assert!(b >= 1 && c >= 1, "b={b} c={c}");
    // TS-1.2.2 / TS-1.2.3: 1 / 0.
    suite
        .apply("conformance/traffic-split/04-install.yaml")
        .await;
    assert_eq!(split_traffic(&suite, 50).await, (50, 0));
    // TS-1.2.4 / TS-1.2.5: 0 / 1.
    suite
        .apply("conformance/traffic-split/06-install.yaml")
        .await;
    assert_eq!(split_traffic(&suite, 50).await, (0, 50));
    // TS-1.2.6 / TS-1.2.7: 75 / 25. The suite sends 50 and checks b > c; a random weighted
    // pick fails that with probability 1.2e-4, so this sends 100 (about 1e-7).
    suite
        .apply("conformance/traffic-split/08-install.yaml")
        .await;
    let (b, c) = split_traffic(&suite, 100).await;
    assert!(b > c, "b={b} c={c}");
    // TS-1.2.8 / TS-1.2.9: 25 / 75.
    suite
        .apply("conformance/traffic-split/10-install.yaml")
        .await;
    let (b, c) = split_traffic(&suite, 100).await;
    assert!(b < c, "b={b} c={c}");
    eprintln!(
        "traffic split: 11 steps in {:.2} s; slowest enforcement {:?}",
        started.elapsed().as_secs_f64(),
        suite.slowest
    );
    suite.shutdown().await;
}
