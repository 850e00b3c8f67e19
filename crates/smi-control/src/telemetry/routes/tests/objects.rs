//! Discovery, one object (its whole shape), and the lists of deployments, pods and namespaces.

use serde_json::json;

use super::*;
use crate::telemetry::quantity;
use crate::telemetry::resources::rfc3339;

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
