use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use smi_core::telemetry::{Direction as Recorded, LatencySketch, Workload};
use smi_core::{Format, ServiceAccount, load_str};
use tower::ServiceExt;

use super::*;
use crate::quota::Quotas;
use crate::telemetry::clock::ManualClock;
use crate::telemetry::report::{Counts, EdgeKey, EdgeReport, Report};
use crate::telemetry::resources::rfc3339;
use crate::telemetry::{StoreLimits, quantity};

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

#[tokio::test]
async fn discovery_lists_the_four_kinds() {
    let f = fixture();
    let want = ok(&f.app, "/").await;
    assert_eq!(ok(&f.app, "").await, want);
    assert_eq!(want["kind"], "APIResourceList");
    assert_eq!(want["groupVersion"], "metrics.smi-spec.io/v1alpha1");
    let resources = want["resources"].as_array().unwrap();
    let listed: Vec<(&str, bool)> = resources
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap(),
                r["namespaced"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("namespaces", false),
            ("deployments", true),
            ("pods", true),
            ("trafficsplits", true)
        ]
    );
    for r in resources {
        assert_eq!(r["kind"], "TrafficMetrics");
        assert_eq!(r["verbs"], json!(["get", "list"]));
    }
}

#[tokio::test]
async fn a_deployment_has_the_shape_the_sdk_serializes() {
    let f = fixture();
    let web = ok(&f.app, "/namespaces/shop/deployments/web").await;
    let now = rfc3339(t0());
    assert_eq!(now, "2023-11-14T22:14:00Z");
    let ms = |q| quantity::latency_ms(f.web_inbound.quantile(q).unwrap());
    assert_eq!(
        web,
        json!({
            "kind": "TrafficMetrics",
            "apiVersion": "metrics.smi-spec.io/v1alpha1",
            "metadata": {
                "name": "web",
                "namespace": "shop",
                "creationTimestamp": now,
                "selfLink": "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/deployments/web",
            },
            "timestamp": now,
            "window": "30s",
            "resource": {"kind": "Deployment", "namespace": "shop", "name": "web"},
            "edge": {"direction": "from", "side": "server", "resource": {}},
            "metrics": [
                {"name": "p99_response_latency", "unit": "ms", "value": ms(0.99)},
                {"name": "p90_response_latency", "unit": "ms", "value": ms(0.90)},
                {"name": "p50_response_latency", "unit": "ms", "value": ms(0.50)},
                {"name": "success_count", "value": "100"},
                {"name": "failure_count", "value": "10"},
                {"name": "denied_count", "value": "0"},
            ],
        })
    );
    // Merged over both pods: 110 samples, 1..20 ms and ten of 7 ms; p99 near 20 ms, p50 near 10.
    let p99 = quantity::parse(&ms(0.99)).unwrap();
    assert!((19.8..=20.2).contains(&p99), "{p99}");
    let p50 = quantity::parse(&ms(0.50)).unwrap();
    assert!((7.0..=10.2).contains(&p50), "{p50}");
    // The typed view reads it back.
    let typed: crate::telemetry::api_types::TrafficMetrics = serde_json::from_value(web).unwrap();
    assert_eq!(typed.number("success_count"), Some(100.0));
}

#[tokio::test]
async fn lists_pods_and_namespaces() {
    let f = fixture();
    let list = ok(&f.app, "/namespaces/shop/deployments").await;
    assert_eq!(list["kind"], "TrafficMetricsList");
    assert_eq!(
        list["resource"],
        json!({"kind": "Deployment", "namespace": "shop"})
    );
    assert_eq!(
        list["metadata"]["selfLink"],
        "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/deployments"
    );
    assert_eq!(names(&list), ["db-v1", "web"]);
    assert_eq!(value(&list["items"][0], "success_count"), "45");
    assert_eq!(names(&ok(&f.app, "/deployments").await), ["db-v1", "web"]);
    let pods = ok(&f.app, "/namespaces/shop/pods").await;
    assert_eq!(
        names(&pods),
        ["db-v1-0", "web-5d8f7c9b4-bbbbb", "web-5d8f7c9b4-x2x7q"]
    );
    let pod = ok(&f.app, "/namespaces/shop/pods/web-5d8f7c9b4-bbbbb").await;
    assert_eq!(pod["resource"]["kind"], "Pod");
    assert_eq!(value(&pod, "success_count"), "10");
    assert_eq!(
        value(&pod, "p50_response_latency"),
        quantity::latency_ms(sketch([7]).quantile(0.5).unwrap())
    );

    let shop = ok(&f.app, "/namespaces/shop").await;
    assert_eq!(
        shop["resource"],
        json!({"kind": "Namespace", "name": "shop"})
    );
    assert_eq!(shop["metadata"]["namespace"], Value::Null);
    assert_eq!(
        shop["metadata"]["selfLink"],
        "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop"
    );
    assert_eq!(value(&shop, "success_count"), "145");
    assert_eq!(names(&ok(&f.app, "/namespaces").await), ["shop"]);
}

#[tokio::test]
async fn edges_are_one_item_per_peer_and_direction() {
    let f = fixture();
    let edges = ok(&f.app, "/namespaces/shop/deployments/web/edges").await;
    assert_eq!(
        edges["metadata"]["selfLink"],
        "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/deployments/web/edges"
    );
    assert_eq!(
        edges["resource"],
        json!({"kind": "Deployment", "namespace": "shop", "name": "web"})
    );
    let items = edges["items"].as_array().unwrap();
    let shape: Vec<Value> = items
        .iter()
        .map(|i| {
            json!([
                i["edge"],
                value(i, "success_count"),
                value(i, "failure_count")
            ])
        })
        .collect();
    let peer = |ns: &str, name: &str| json!({"kind": "Deployment", "namespace": ns, "name": name});
    assert_eq!(
        shape,
        [
            json!([{"direction": "to", "side": "client", "resource": peer("shop", "db-v1")}, "45", "0"]),
            json!([{"direction": "to", "side": "client", "resource": peer("shop", "db-v2")}, "4", "1"]),
            json!([{"direction": "from", "side": "server", "resource": peer("edge", "gateway")}, "100", "10"]),
        ]
    );
    for item in items {
        assert_eq!(item["resource"]["name"], "web");
        assert!(
            item["metadata"]["selfLink"]
                .as_str()
                .unwrap()
                .ends_with("/deployments/web/edges")
        );
    }
    let ns = ok(&f.app, "/namespaces/shop/edges").await;
    assert_eq!(ns["items"].as_array().unwrap().len(), 4, "{ns}");
    assert_eq!(
        ns["metadata"]["selfLink"],
        "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/edges"
    );
    let pod = ok(&f.app, "/namespaces/shop/pods/db-v1-0/edges").await;
    assert_eq!(pod["items"][0]["edge"]["resource"], peer("shop", "web"));
}

#[tokio::test]
async fn a_split_is_one_item_per_backend_with_its_weight() {
    let f = fixture();
    let split = ok(&f.app, "/namespaces/shop/trafficsplits/db-split").await;
    assert_eq!(split["kind"], "TrafficMetricsList");
    assert_eq!(
        split["resource"],
        json!({"kind": "TrafficSplit", "namespace": "shop", "name": "db-split"})
    );
    let items = split["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let out = quantity::latency_ms(sketch([3]).quantile(0.5).unwrap());
    for (item, backend, weight, success, failure) in [
        (&items[0], "db-v1", 90, "45", "0"),
        (&items[1], "db-v2", 10, "4", "1"),
    ] {
        assert_eq!(
            item["backend"],
            json!({"apex": "db", "name": backend, "weight": weight})
        );
        assert_eq!(
            item["edge"],
            json!({"direction": "to", "side": "client", "resource": {"kind": "Service", "namespace": "shop", "name": backend}})
        );
        assert_eq!(item["resource"]["kind"], "TrafficSplit");
        assert_eq!(value(item, "success_count"), success);
        assert_eq!(value(item, "failure_count"), failure);
        assert_eq!(value(item, "p50_response_latency"), out);
    }
    assert_eq!(
        ok(&f.app, "/namespaces/shop/trafficsplits").await["items"],
        split["items"]
    );
    assert_eq!(ok(&f.app, "/trafficsplits").await["items"], split["items"]);
    let none = ok(&f.app, "/namespaces/other/trafficsplits").await;
    assert_eq!(none["items"], json!([]));
}

#[tokio::test]
async fn the_window_is_a_go_duration_capped_at_an_hour() {
    let f = fixture();
    let web = "/namespaces/shop/deployments/web";
    assert_eq!(ok(&f.app, &format!("{web}?t=1m")).await["window"], "1m0s");
    assert_eq!(ok(&f.app, &format!("{web}?t=90s")).await["window"], "1m30s");
    assert_eq!(ok(&f.app, &format!("{web}?t=3h")).await["window"], "1h0m0s");
    f.clock.advance(Duration::from_secs(40));
    let later = ok(&f.app, web).await;
    assert_eq!(later["timestamp"], rfc3339(t0() + Duration::from_secs(40)));
    assert_eq!(
        value(&later, "success_count"),
        "0",
        "out of the 30 s window"
    );
    assert_eq!(value(&later, "p99_response_latency"), "0");
    let minute = ok(&f.app, &format!("{web}?t=1m")).await;
    assert_eq!(value(&minute, "success_count"), "100");
    for bad in ["abc", "0s", "-5s", "30", "%ZZ"] {
        let (status, body) = get(&f.app, &format!("{BASE}{web}?t={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.starts_with("t: ") || error.starts_with("the query string"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn other_kinds_and_unknown_objects_are_404_with_the_reason() {
    let f = fixture();
    for path in [
        "/services",
        "/namespaces/shop/services",
        "/namespaces/shop/services/web",
        "/namespaces/shop/services/web/edges",
    ] {
        let (status, body) = get(&f.app, &format!("{BASE}{path}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            body,
            json!({"error": "Unsupported resource: services"}),
            "{path}"
        );
    }
    for (path, says) in [
        (
            "/namespaces/shop/deployments/nope",
            "deployments \"nope\" not found in namespace \"shop\"",
        ),
        (
            "/namespaces/shop/deployments/nope/edges",
            "deployments \"nope\" not found",
        ),
        ("/namespaces/shop/pods/web", "pods \"web\" not found"),
        ("/namespaces/nope", "namespaces \"nope\" not found"),
        ("/namespaces/nope/edges", "namespaces \"nope\" not found"),
        (
            "/namespaces/shop/trafficsplits/nope",
            "no such TrafficSplit",
        ),
        (
            "/namespaces/shop/namespaces",
            "namespaces are not namespaced",
        ),
        (
            "/namespaces/shop/namespaces/shop",
            "namespaces are not namespaced",
        ),
    ] {
        let (status, body) = get(&f.app, &format!("{BASE}{path}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(says), "{path}: {error}");
    }
    // Known within the hour, out of the window: still found, with nothing counted.
    f.clock.advance(Duration::from_secs(59 * 60));
    ok(&f.app, "/namespaces/shop/deployments/web").await;
    f.clock.advance(Duration::from_secs(120));
    let (status, _) = get(&f.app, &format!("{BASE}/namespaces/shop/deployments/web")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
