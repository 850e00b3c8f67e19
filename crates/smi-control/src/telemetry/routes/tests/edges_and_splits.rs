//! Edges (one item per peer and direction) and TrafficSplits (one item per backend).

use serde_json::json;

use super::*;
use crate::telemetry::quantity;

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
