use serde_json::json;

use super::*;

fn item(
    resource: serde_json::Value,
    edge: serde_json::Value,
    backend: Option<serde_json::Value>,
    counts: (u64, u64, u64),
    ms: [&str; 3],
) -> TrafficMetrics {
    let mut v = json!({
        "kind": "TrafficMetrics",
        "apiVersion": "metrics.smi-spec.io/v1alpha1",
        "window": "30s",
        "resource": resource,
        "edge": edge,
        "metrics": [
            {"name": "p99_response_latency", "unit": "ms", "value": ms[2]},
            {"name": "p90_response_latency", "unit": "ms", "value": ms[1]},
            {"name": "p50_response_latency", "unit": "ms", "value": ms[0]},
            {"name": "success_count", "value": counts.0.to_string()},
            {"name": "failure_count", "value": counts.1.to_string()},
            {"name": "denied_count", "value": counts.2.to_string()},
        ],
    });
    if let Some(b) = backend {
        v["backend"] = b;
    }
    serde_json::from_value(v).unwrap()
}

fn render(view: View, items: &[TrafficMetrics]) -> String {
    let mut out = Vec::new();
    table(view, items).write(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn whole() -> serde_json::Value {
    json!({"direction": "from", "side": "server", "resource": {}})
}

#[test]
fn resources_show_success_rate_rps_and_latencies() {
    let items = [
        item(
            json!({"kind": "Deployment", "namespace": "shop", "name": "web"}),
            whole(),
            None,
            (297, 3, 0),
            ["2", "3250m", "12"],
        ),
        item(
            json!({"kind": "Deployment", "namespace": "shop", "name": "db\u{1b}[2J"}),
            whole(),
            None,
            (0, 0, 6),
            ["0", "0", "0"],
        ),
    ];
    assert_eq!(
        render(
            View::Resources {
                all_namespaces: true
            },
            &items
        ),
        "NAMESPACE   NAME        SUCCESS   RPS    LATENCY_P50   LATENCY_P90   LATENCY_P99\n\
         shop        web         99.00%    10.0   2ms           3.25ms        12ms\n\
         shop        db\\x1b[2J   -         0.2    -             -             -\n"
    );
    let one = render(
        View::Resources {
            all_namespaces: false,
        },
        &items[..1],
    );
    assert!(one.starts_with("NAME   SUCCESS"), "{one}");
    assert_eq!(
        render(
            View::Resources {
                all_namespaces: false
            },
            &[]
        ),
        "NAME   SUCCESS   RPS   LATENCY_P50   LATENCY_P90   LATENCY_P99\n(no traffic reported in the window)\n"
    );
}

#[test]
fn a_split_shows_each_backends_weight_beside_its_share() {
    let split = json!({"kind": "TrafficSplit", "namespace": "shop", "name": "db-split"});
    let edge = |b: &str| json!({"direction": "to", "side": "client", "resource": {"kind": "Service", "namespace": "shop", "name": b}});
    let items = [
        item(
            split.clone(),
            edge("db-v1"),
            Some(json!({"apex": "db", "name": "db-v1", "weight": 900})),
            (240, 0, 0),
            ["1", "2", "3"],
        ),
        item(
            split,
            edge("db-v2"),
            Some(json!({"apex": "db", "name": "db-v2", "weight": 100})),
            (50, 10, 0),
            ["1", "2", "3"],
        ),
    ];
    let text = render(
        View::Splits {
            all_namespaces: false,
        },
        &items,
    );
    assert_eq!(
        text,
        "NAME       APEX   BACKEND   WEIGHT   SHARE   SUCCESS   RPS   LATENCY_P50   LATENCY_P90   LATENCY_P99\n\
         db-split   db     db-v1     90.0%    80.0%   100.00%   8.0   1ms           2ms           3ms\n\
         db-split   db     db-v2     10.0%    20.0%   83.33%    2.0   1ms           2ms           3ms\n"
    );
}

#[test]
fn edges_show_the_peer_and_direction() {
    let web = json!({"kind": "Deployment", "namespace": "shop", "name": "web"});
    let items = [
        item(
            web.clone(),
            json!({"direction": "to", "side": "client", "resource": {"kind": "Deployment", "namespace": "shop", "name": "db"}}),
            None,
            (30, 0, 0),
            ["1", "1", "1"],
        ),
        item(
            web,
            json!({"direction": "from", "side": "server", "resource": {"kind": "ServiceAccount", "namespace": "edge", "name": "gateway"}}),
            None,
            (3, 3, 0),
            ["5", "6", "7"],
        ),
    ];
    assert_eq!(
        render(View::Edges, &items),
        "DIRECTION   PEER                     PEER_NAMESPACE   SUCCESS   RPS   LATENCY_P50   LATENCY_P90   LATENCY_P99\n\
         to          deployment/db            shop             100.00%   1.0   1ms           1ms           1ms\n\
         from        serviceaccount/gateway   edge             50.00%    0.2   5ms           6ms           7ms\n"
    );
}
