//! Flagger's part in a canary, played against a real Prometheus (Debian's, installed by the
//! README's test command): a TrafficSplit walks 90/10, 50/50, 0/100 from a healthy primary to a
//! failing, slower canary, and after each step Flagger's own Istio queries (fluxcd/flagger
//! `pkg/metrics/observers/istio.go`, its request-success-rate and request-duration checks) run
//! through Prometheus' HTTP API on what it scraped from the workloads' `/metrics`. Their answers
//! are checked against what the servers themselves counted and timed. A real control service,
//! real workloads (`Mesh`), real mTLS on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use http::StatusCode;
use smi_client::{Mesh, MeshClient};
use smi_test_util::bookstore::get;
use smi_test_util::prometheus::Prometheus;
use smi_test_util::{Control, LocalControl, Server, policy_until};
use tokio::net::TcpListener;

/// loadtester may call anything podinfo (ServiceAccount test/podinfo) serves.
const ACCESS: &str = "\
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: everything, namespace: test}
spec:
  matches:
  - name: any
    pathRegex: .*
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: loadtester-to-podinfo, namespace: test}
spec:
  destination: {kind: ServiceAccount, name: podinfo, namespace: test}
  rules:
  - {kind: HTTPRouteGroup, name: everything}
  sources:
  - {kind: ServiceAccount, name: loadtester, namespace: test}
";

/// The TrafficSplit Flagger writes for a canary of `podinfo`: the primary Deployment
/// (`podinfo-primary`) behind `podinfo-primary`, the canary (Deployment `podinfo`, Flagger's
/// target) behind `podinfo-canary`.
fn split(primary: u32, canary: u32) -> String {
    format!(
        "apiVersion: split.smi-spec.io/v1alpha2\nkind: TrafficSplit\nmetadata: {{name: podinfo, namespace: test}}\nspec:\n  service: podinfo\n  backends:\n  - {{service: podinfo-primary, weight: {primary}}}\n  - {{service: podinfo-canary, weight: {canary}}}\n"
    )
}

/// Flagger's request-success-rate query (Istio provider), `{{ target }}` and `{{ interval }}`
/// filled in.
fn success_rate(target: &str, interval: &str) -> String {
    format!(
        "sum(rate(istio_requests_total{{reporter=\"destination\",destination_workload_namespace=\"test\",destination_workload=~\"{target}\",response_code!~\"5.*\"}}[{interval}])) / sum(rate(istio_requests_total{{reporter=\"destination\",destination_workload_namespace=\"test\",destination_workload=~\"{target}\"}}[{interval}])) * 100"
    )
}

/// Flagger's request-duration query (Istio provider): the p99 in milliseconds.
fn duration_p99(target: &str, interval: &str) -> String {
    format!(
        "histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{{reporter=\"destination\",destination_workload_namespace=\"test\",destination_workload=~\"{target}\"}}[{interval}])) by (le))"
    )
}

/// The requests a server answered, and how many with a 5xx, by its own count.
#[derive(Default)]
struct Counted {
    answered: AtomicU64,
    failed: AtomicU64,
    slowest_micros: AtomicU64,
}

/// Flagger's `{{ interval }}`: longer than the test, so every query sees the first scrape.
const INTERVAL: &str = "5m";

/// Istio's duration buckets, milliseconds (the workloads' default).
const ISTIO_BOUNDS_MS: [f64; 23] = [
    0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 25.0, 50.0, 100.0, 200.0, 250.0, 500.0, 1000.0, 2000.0, 2500.0,
    5000.0, 10000.0, 30000.0, 60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// The time between two requests of the load tester.
const PACE: Duration = Duration::from_millis(10);

/// The canary fails every fourth request and takes 30 ms over each; the primary answers at once.
const CANARY_DELAY: Duration = Duration::from_millis(30);

/// A meshed podinfo Deployment `workload` serving `service`, counting what it answers, with its
/// admin endpoint (for Prometheus) on its own port.
async fn podinfo(
    control: &LocalControl,
    workload: &'static str,
    service: &str,
    failing: bool,
) -> (Server, Arc<Counted>, SocketAddr) {
    let counted = Arc::new(Counted::default());
    let router = {
        let counted = counted.clone();
        Router::new().fallback(move || {
            let counted = counted.clone();
            async move {
                let started = Instant::now();
                let n = counted.answered.fetch_add(1, Ordering::SeqCst) + 1;
                let status = if failing {
                    tokio::time::sleep(CANARY_DELAY).await;
                    if n % 4 == 0 {
                        counted.failed.fetch_add(1, Ordering::SeqCst);
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    }
                } else {
                    StatusCode::OK
                };
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                counted.slowest_micros.fetch_max(micros, Ordering::SeqCst);
                (status, [("x-backend", workload)], workload)
            }
        })
    };
    let token = control.token("test/podinfo", &[service]);
    let config = control
        .config("test/podinfo", token, &[])
        .names(workload, &format!("{workload}-5d8f7c9b4-x2x7q"));
    let mesh = Mesh::start(config).await.expect("podinfo starts");
    let app = tower_layer::Layer::layer(&smi_server::AuthorizeLayer::new(mesh.clone()), router);
    let server = Server::on(mesh, &[service], app, Default::default()).await;
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = admin.local_addr().unwrap();
    tokio::spawn(smi_server::serve_admin(admin, server.mesh.clone()));
    (server, counted, admin_addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_walk_reads_flaggers_istio_queries_from_a_real_prometheus() {
    let mut control =
        LocalControl::start(&[("access.yaml", ACCESS), ("split.yaml", &split(100, 0))]).await;
    let (_primary, primary_count, primary_admin) =
        podinfo(&control, "podinfo-primary", "test/podinfo-primary", false).await;
    let (_canary, canary_count, canary_admin) =
        podinfo(&control, "podinfo", "test/podinfo-canary", true).await;
    let loadtester = control
        .mesh(
            "test/loadtester",
            &[],
            &[
                "test/podinfo",
                "test/podinfo-primary",
                "test/podinfo-canary",
            ],
        )
        .await;
    policy_until(
        &loadtester,
        "both backends' endpoints",
        Duration::from_secs(10),
        |p| {
            ["podinfo-primary", "podinfo-canary"]
                .iter()
                .all(|s| !p.endpoints("test", s).is_empty())
        },
    )
    .await;
    let client = MeshClient::new(loadtester.clone());

    // Every series exists before Prometheus' first scrape, as in a canary that has served a
    // while: each backend answered a request, the canary also failed its fourth. rate() counts
    // from a series' first sample, so series first scraped at different moments would skew the
    // ratio; these all start at the first scrape, at known values.
    assert_eq!(
        get(&client, "http://podinfo-primary.test/")
            .await
            .unwrap()
            .0,
        StatusCode::OK
    );
    for _ in 0..4 {
        get(&client, "http://podinfo-canary.test/").await.unwrap();
    }
    let (warm_answered, warm_failed) = (4, 1);
    assert_eq!(canary_count.failed.load(Ordering::SeqCst), warm_failed);
    let prometheus = Prometheus::start(&[primary_admin, canary_admin]).await;

    const REQUESTS: u64 = 400;
    for (primary_weight, canary_weight) in [(90, 10), (50, 50), (0, 100)] {
        control.write_policy("split.yaml", &split(primary_weight, canary_weight));
        policy_until(
            &loadtester,
            "the new weights",
            Duration::from_secs(10),
            |p| {
                p.snapshot.policy().splits.iter().any(|s| {
                    s.backends.iter().any(|b| {
                        b.service == "podinfo-canary" && b.weight == u64::from(canary_weight)
                    })
                })
            },
        )
        .await;
        let canary_before = canary_count.answered.load(Ordering::SeqCst);
        // Traffic spread over about four seconds, as a load tester sends it: every series then
        // grows across several 1 s scrapes, which rate() needs (a series first scraped at its
        // final count has no rate).
        let mut pace = tokio::time::interval(PACE);
        for _ in 0..REQUESTS {
            pace.tick().await;
            let (status, _) = get(&client, "http://podinfo.test/").await.unwrap();
            assert!(status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE);
        }
        let to_canary = canary_count.answered.load(Ordering::SeqCst) - canary_before;
        let step = format!("step {primary_weight}/{canary_weight}");
        let expected = REQUESTS * u64::from(canary_weight) / 100;
        let slack = if canary_weight == 100 {
            0
        } else {
            REQUESTS / 8
        };
        assert!(
            to_canary.abs_diff(expected) <= slack,
            "{step}: the canary got {to_canary} of {REQUESTS}"
        );

        // Prometheus has scraped what the servers counted, exactly.
        let (answered, failed) = (
            canary_count.answered.load(Ordering::SeqCst),
            canary_count.failed.load(Ordering::SeqCst),
        );
        let total = "sum(istio_requests_total{reporter=\"destination\",destination_workload_namespace=\"test\",destination_workload=~\"podinfo\"})";
        prometheus
            .query_until(total, Duration::from_secs(10), |v| v == answered as f64)
            .await;
        let ok = "sum(istio_requests_total{reporter=\"destination\",destination_workload_namespace=\"test\",destination_workload=~\"podinfo\",response_code!~\"5.*\"})";
        prometheus
            .query_until(ok, Duration::from_secs(10), |v| {
                v == (answered - failed) as f64
            })
            .await;

        // Flagger's success rate for the canary: what its own counts say of the requests since
        // the first scrape, within one request's worth (rate() extrapolates each series from
        // its samples), and 100 for the primary.
        let since = (answered - warm_answered, failed - warm_failed);
        let rate = 100.0 * (since.0 - since.1) as f64 / since.0 as f64;
        let canary_rate = prometheus
            .query_until(
                &success_rate("podinfo", INTERVAL),
                Duration::from_secs(10),
                |v| (v - rate).abs() <= 100.0 / since.0 as f64 + 0.5,
            )
            .await;
        let primary_rate = if primary_count.answered.load(Ordering::SeqCst) > 0 {
            prometheus
                .query_until(
                    &success_rate("podinfo-primary", INTERVAL),
                    Duration::from_secs(10),
                    |v| v == 100.0,
                )
                .await
        } else {
            f64::NAN
        };
        // Flagger's p99 for the canary: every answer took 30 ms or more, so the quantile lies
        // above the bucket bound 25 and at most at the bound of the bucket that holds the
        // slowest answer the server timed.
        let slowest = canary_count.slowest_micros.load(Ordering::SeqCst) as f64 / 1000.0;
        let upper = ISTIO_BOUNDS_MS
            .iter()
            .copied()
            .find(|&bound| bound >= slowest)
            .expect("an answer within an hour");
        let p99 = prometheus
            .query_until(
                &duration_p99("podinfo", INTERVAL),
                Duration::from_secs(10),
                |v| v > 25.0 && v <= upper,
            )
            .await;
        println!(
            "{step}: canary got {to_canary}/{REQUESTS}; success rate canary {canary_rate:.2} (own count {rate:.2}), primary {primary_rate}; canary p99 {p99:.2} ms (slowest own {slowest:.2} ms)"
        );
    }
    drop(prometheus);
    control.shutdown().await;
}
