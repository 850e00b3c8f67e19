//! The TrafficMetrics routes over a fixed store: the objects and their lists (`objects`), edges
//! and TrafficSplits (`edges_and_splits`), the window and the errors (`windows_and_errors`).
//! The fixture and the readers of the JSON answers are here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::Value;
use smi_core::telemetry::{Direction as Recorded, LatencySketch, Workload};
use smi_core::{Format, ServiceAccount, load_str};
use tower::ServiceExt;

use super::*;
use crate::quota::Quotas;
use crate::telemetry::StoreLimits;
use crate::telemetry::clock::ManualClock;
use crate::telemetry::report::{Counts, EdgeKey, EdgeReport, Report};

mod edges_and_splits;
mod objects;
mod windows_and_errors;

const SPLIT: &str = "apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: db-split, namespace: shop}
spec:
  service: db
  backends:
  - {service: db-v1, weight: 90}
  - {service: db-v2, weight: 10}
";

const BASE: &str = "/apis/metrics.smi-spec.io/v1alpha1";

struct Fixture {
    app: Router,
    clock: Arc<ManualClock>,
    /// The latencies the `web` deployment's servers recorded.
    web_inbound: LatencySketch,
}

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_040)
}

fn edge(
    direction: Recorded,
    peer: (&str, &str),
    service: &str,
    backend: &str,
    counts: (u64, u64),
    latency: &LatencySketch,
) -> EdgeReport {
    let (ns, workload) = peer;
    EdgeReport {
        key: EdgeKey {
            direction,
            peer_identity: format!("spiffe://cluster.local/ns/{ns}/sa/{workload}").into(),
            peer_workload: workload.into(),
            peer_pod: format!("{workload}-0").into(),
            service: service.into(),
            backend: backend.into(),
            route: "r".into(),
        },
        counts: Counts {
            success: counts.0,
            failure: counts.1,
            denied: 0,
        },
        latency: latency.clone(),
    }
}

fn sketch(millis: impl IntoIterator<Item = u64>) -> LatencySketch {
    let mut s = LatencySketch::new();
    for ms in millis {
        s.record(Duration::from_millis(ms));
    }
    s
}

/// `shop`: pods web-0 and web-1 (deployment web) serve `edge/gateway` and call `db` through
/// the split db-split (db-v1 90, db-v2 10); db-v1-0 serves web.
fn fixture() -> Fixture {
    let clock = Arc::new(ManualClock::new(t0()));
    let store = Arc::new(TelemetryStore::new(
        clock.clone(),
        StoreLimits::from(&Quotas::default()),
    ));
    let hub = Hub::new(false);
    hub.set_policy(Arc::new(load_str("split.yaml", SPLIT, Format::Yaml).policy));
    let in0 = sketch((1..=100).map(|n| n % 20 + 1));
    let in1 = sketch([7; 10]);
    let out = sketch([3; 10]);
    let web = ServiceAccount::new("shop", "web");
    let report = |pod: &str, edges| Report {
        instance: pod.into(),
        sequence: 1,
        reporter: Workload::new(
            "shop",
            Workload::name_of_pod(pod).trim_end_matches("-0"),
            pod,
        ),
        edges,
    };
    let gateway = ("edge", "gateway");
    store
        .ingest(
            &web,
            report(
                "web-5d8f7c9b4-x2x7q",
                vec![
                    edge(Recorded::Inbound, gateway, "shop/web", "", (90, 10), &in0),
                    edge(
                        Recorded::Outbound,
                        ("shop", "db-v1"),
                        "shop/db",
                        "shop/db-v1",
                        (45, 0),
                        &out,
                    ),
                    edge(
                        Recorded::Outbound,
                        ("shop", "db-v2"),
                        "shop/db",
                        "shop/db-v2",
                        (4, 1),
                        &out,
                    ),
                ],
            ),
        )
        .unwrap();
    store
        .ingest(
            &web,
            report(
                "web-5d8f7c9b4-bbbbb",
                vec![edge(
                    Recorded::Inbound,
                    gateway,
                    "shop/web",
                    "",
                    (10, 0),
                    &in1,
                )],
            ),
        )
        .unwrap();
    store
        .ingest(
            &ServiceAccount::new("shop", "db"),
            report(
                "db-v1-0",
                vec![edge(
                    Recorded::Inbound,
                    ("shop", "web"),
                    "shop/db-v1",
                    "",
                    (45, 0),
                    &out,
                )],
            ),
        )
        .unwrap();
    let mut web_inbound = in0;
    web_inbound.merge(&in1);
    Fixture {
        app: router(MetricsState {
            telemetry: store,
            hub,
        }),
        clock,
        web_inbound,
    }
}

async fn get(app: &Router, uri: &str) -> (StatusCode, Value) {
    let response = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let json = response.headers()["content-type"] == "application/json";
    assert!(json, "{uri}: {:?}", response.headers());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

async fn ok(app: &Router, path: &str) -> Value {
    let (status, body) = get(app, &format!("{BASE}{path}")).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

/// `name -> value` of an item's metrics, in order.
fn values(item: &Value) -> Vec<(String, String)> {
    item["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_owned(),
                m["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn value(item: &Value, name: &str) -> String {
    values(item)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name} in {item}"))
        .1
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["resource"]["name"].as_str().unwrap().to_owned())
        .collect()
}
