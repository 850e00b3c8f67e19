//! The pure parts: paths read as kube-apiserver reads them, denials worded as it words them,
//! the review as sent, and the cache of answers. The front proxy's checks are in
//! `requestheader/tests.rs`; the whole over real TLS in tests/tests/kubernetes_aggregated_api.rs.

use std::time::{Duration, Instant};

use http::Method;

use super::attributes::BadPath;
use super::review::subject_access_review;
use super::*;

fn resource(verb: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
    Attributes::Resource(ResourceAttributes {
        verb: verb.into(),
        group: GROUP.into(),
        version: "v1alpha1".into(),
        resource: resource.into(),
        subresource: sub.into(),
        namespace: ns.into(),
        name: name.into(),
    })
}

fn non_resource(path: &str) -> Attributes {
    Attributes::NonResource {
        verb: "get".into(),
        path: path.into(),
    }
}

#[test]
fn reads_paths_as_kube_apiserver_does() {
    let base = "/apis/metrics.smi-spec.io/v1alpha1";
    let cases = [
        ("", non_resource(base)),
        ("/", non_resource(&format!("{base}/"))),
        ("/deployments", resource("list", "deployments", "", "", "")),
        ("/namespaces", resource("list", "namespaces", "", "", "")),
        (
            "/namespaces/shop",
            resource("get", "namespaces", "", "shop", "shop"),
        ),
        (
            "/namespaces/shop/edges",
            resource("list", "edges", "", "shop", ""),
        ),
        (
            "/namespaces/shop/deployments",
            resource("list", "deployments", "", "shop", ""),
        ),
        (
            "/namespaces/shop/pods/web-0",
            resource("get", "pods", "", "shop", "web-0"),
        ),
        (
            "/namespaces/shop/deployments/web/edges",
            resource("get", "deployments", "edges", "shop", "web"),
        ),
        (
            "/namespaces/shop/trafficsplits/db-split",
            resource("get", "trafficsplits", "", "shop", "db-split"),
        ),
        (
            "/namespaces/shop/status",
            resource("get", "namespaces", "status", "shop", "shop"),
        ),
        (
            "/watch/namespaces/shop/pods",
            resource("watch", "pods", "", "shop", ""),
        ),
        (
            "/namespaces/sh%6Fp/deployments/w%2Feb",
            resource("get", "deployments", "", "shop", "w/eb"),
        ),
    ];
    for (path, want) in cases {
        let path = format!("{base}{path}");
        assert_eq!(
            Attributes::of(&Method::GET, &path, None),
            Ok(want),
            "{path}"
        );
    }
    for (path, want) in [
        ("/apis", non_resource("/apis")),
        (
            "/apis/metrics.smi-spec.io",
            non_resource("/apis/metrics.smi-spec.io"),
        ),
        ("/healthz", non_resource("/healthz")),
        ("/", non_resource("/")),
    ] {
        assert_eq!(Attributes::of(&Method::GET, path, None), Ok(want), "{path}");
    }
}

#[test]
fn takes_the_verb_from_the_method_and_the_query() {
    let path = "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/pods";
    let verb = |method: Method, query: Option<&str>| {
        Attributes::of(&method, path, query).map(|a| a.verb().to_owned())
    };
    assert_eq!(verb(Method::GET, Some("t=30s")).as_deref(), Ok("list"));
    assert_eq!(
        verb(Method::GET, Some("watch=true")).as_deref(),
        Ok("watch")
    );
    assert_eq!(
        verb(Method::GET, Some("watch=1&t=1m")).as_deref(),
        Ok("watch")
    );
    assert_eq!(
        verb(Method::GET, Some("watch=false")).as_deref(),
        Ok("list")
    );
    assert_eq!(verb(Method::GET, Some("watch=0")).as_deref(), Ok("list"));
    assert_eq!(verb(Method::HEAD, None).as_deref(), Ok("list"));
    assert_eq!(verb(Method::POST, None).as_deref(), Ok("create"));
    assert_eq!(
        verb(Method::DELETE, None).as_deref(),
        Ok("deletecollection")
    );
    let one = format!("{path}/web-0");
    let verb_one = |m: Method| Attributes::of(&m, &one, None).map(|a| a.verb().to_owned());
    assert_eq!(verb_one(Method::PUT).as_deref(), Ok("update"));
    assert_eq!(verb_one(Method::PATCH).as_deref(), Ok("patch"));
    assert_eq!(verb_one(Method::DELETE).as_deref(), Ok("delete"));
    let discovery = Attributes::of(&Method::POST, "/apis/metrics.smi-spec.io", None);
    assert_eq!(
        discovery.map(|a| a.verb().to_owned()).as_deref(),
        Ok("post")
    );
}

#[test]
fn refuses_paths_that_do_not_decode() {
    for path in [
        "/apis/metrics.smi-spec.io/v1alpha1/namespaces/%zz/pods",
        "/apis/metrics.smi-spec.io/v1alpha1/namespaces/%+1/pods",
        "/apis/metrics.smi-spec.io/v1alpha1/namespaces/%ff/pods",
        "/apis/metrics.smi-spec.io/v1alpha1/namespaces/a%2",
    ] {
        assert!(
            matches!(
                Attributes::of(&Method::GET, path, None),
                Err(BadPath::Encoding(_))
            ),
            "{path}"
        );
    }
    let watch = Attributes::of(
        &Method::GET,
        "/apis/metrics.smi-spec.io/v1alpha1/watch",
        None,
    );
    assert!(matches!(watch, Err(BadPath::NoKind(_))), "{watch:?}");
}

#[test]
fn words_denials_as_kubernetes_does() {
    let edges = resource("get", "deployments", "edges", "shop", "web");
    assert_eq!(
        edges.forbidden_message("alice", ""),
        r#"deployments.metrics.smi-spec.io "web" is forbidden: User "alice" cannot get resource "deployments/edges" in API group "metrics.smi-spec.io" in the namespace "shop""#
    );
    let list = resource("list", "pods", "", "", "");
    assert_eq!(
        list.forbidden_message("bob", "RBAC: role not found"),
        r#"pods.metrics.smi-spec.io is forbidden: User "bob" cannot list resource "pods" in API group "metrics.smi-spec.io" at the cluster scope: RBAC: role not found"#
    );
    assert_eq!(
        non_resource("/apis/metrics.smi-spec.io/v1alpha1").forbidden_message("alice", ""),
        r#"forbidden: User "alice" cannot get path "/apis/metrics.smi-spec.io/v1alpha1""#
    );
}

#[test]
fn sends_the_review_kube_apiserver_would() {
    let user = User {
        name: "alice".into(),
        uid: "u-1".into(),
        groups: vec!["devs".into(), "system:authenticated".into()],
        extra: [("scopes".to_owned(), vec!["a".to_owned()])].into(),
    };
    let review = subject_access_review(
        &user,
        &resource("get", "deployments", "edges", "shop", "web"),
    );
    let json = serde_json::to_value(&review).expect("serializes");
    assert_eq!(json["apiVersion"], "authorization.k8s.io/v1");
    assert_eq!(json["kind"], "SubjectAccessReview");
    assert_eq!(
        json["spec"],
        serde_json::json!({
            "user": "alice", "uid": "u-1", "groups": ["devs", "system:authenticated"],
            "extra": {"scopes": ["a"]},
            "resourceAttributes": {
                "verb": "get", "group": GROUP, "version": "v1alpha1", "resource": "deployments",
                "subresource": "edges", "namespace": "shop", "name": "web",
            },
        })
    );
    let discovery = subject_access_review(&user, &non_resource("/apis/metrics.smi-spec.io"));
    let json = serde_json::to_value(&discovery).expect("serializes");
    assert_eq!(
        json["spec"]["nonResourceAttributes"],
        serde_json::json!({"path": "/apis/metrics.smi-spec.io", "verb": "get"})
    );
    assert!(json["spec"].get("resourceAttributes").is_none());
}

fn key(user: &str, name: &str) -> std::sync::Arc<(User, Attributes)> {
    let user = User {
        name: user.into(),
        ..User::default()
    };
    std::sync::Arc::new((user, resource("get", "pods", "", "shop", name)))
}

#[test]
fn keeps_answers_until_they_expire() {
    let ttl = Duration::from_secs(10);
    let mut cache = DecisionCache::new(ttl, 8);
    let t0 = Instant::now();
    let denied = Decision::Denied {
        reason: String::new(),
    };
    cache.insert(key("alice", "a"), Decision::Allowed, t0);
    cache.insert(key("bob", "a"), denied.clone(), t0);
    assert_eq!(
        cache.get(&key("alice", "a"), t0 + ttl / 2),
        Some(Decision::Allowed)
    );
    assert_eq!(cache.get(&key("bob", "a"), t0 + ttl / 2), Some(denied));
    assert_eq!(cache.get(&key("alice", "b"), t0), None, "another object");
    assert_eq!(cache.get(&key("alice", "a"), t0 + ttl), None, "expired");
    assert_eq!(cache.len(), 1, "the expired answer is gone");
}

#[test]
fn holds_at_most_its_capacity() {
    let ttl = Duration::from_secs(10);
    let mut cache = DecisionCache::new(ttl, 3);
    let t0 = Instant::now();
    for (i, name) in ["a", "b", "c", "d"].into_iter().enumerate() {
        cache.insert(
            key("alice", name),
            Decision::Allowed,
            t0 + Duration::from_secs(i as u64),
        );
    }
    assert_eq!(cache.len(), 3);
    let now = t0 + Duration::from_secs(4);
    assert_eq!(
        cache.get(&key("alice", "a"), now),
        None,
        "the one expiring first went"
    );
    for name in ["b", "c", "d"] {
        assert_eq!(
            cache.get(&key("alice", name), now),
            Some(Decision::Allowed),
            "{name}"
        );
    }
    let mut none = DecisionCache::new(ttl, 0);
    none.insert(key("alice", "a"), Decision::Allowed, t0);
    assert!(none.is_empty(), "a cache of size 0 keeps nothing");
}

#[test]
fn names_the_service_in_the_certificate() {
    let config = AggregatedApiConfig {
        server_names: vec![
            "smi-control.smi-system.svc".into(),
            "metrics.example.com".into(),
        ],
        ..AggregatedApiConfig::default()
    };
    assert_eq!(
        config.dns_names(),
        [
            "smi-control.smi-system.svc",
            "smi-control.smi-system.svc.cluster.local",
            "metrics.example.com"
        ]
    );
}
