//! The `?t=` window, and the 404s and 400s with their reasons.

use serde_json::json;

use super::*;
use crate::telemetry::resources::rfc3339;

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
