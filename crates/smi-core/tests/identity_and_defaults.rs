//! Decisions that do not depend on routes: missing or foreign identities, permissive mode.

use http::HeaderMap;
use smi_core::policy::{Denied, HttpRequest, Permit, Request};
use smi_core::{Format, Options, ServiceAccount, Snapshot, SpiffeId, load_str};

const POLICY: &str = r#"
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: all-ports, namespace: shop}
spec: {matches: {ports: []}}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: web-to-api, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api}
  sources: [{kind: ServiceAccount, name: web}]
  rules: [{kind: TCPRoute, name: all-ports}]
"#;

fn id(td: &str, ns: &str, sa: &str) -> SpiffeId {
    ServiceAccount::new(ns, sa).spiffe_id(td)
}

fn snapshot(options: Options) -> Snapshot {
    let loaded = load_str("p.yaml", POLICY, Format::Yaml);
    assert!(loaded.is_valid(), "{:?}", loaded.diagnostics);
    Snapshot::compile(loaded.policy, options)
}

#[test]
fn omitted_subject_namespaces_default_to_the_targets_namespace() {
    let s = snapshot(Options::default());
    let h = HeaderMap::new();
    let req = Request::http(Some(80), HttpRequest::new("GET", "/", &h));
    let api = id("cluster.local", "shop", "api");
    let permit = s.authorize(&api, Some(&id("cluster.local", "shop", "web")), &req);
    assert!(matches!(permit, Ok(Permit::Granted { target, .. }) if target.name == "web-to-api"));
    assert_eq!(
        s.authorize(&api, Some(&id("cluster.local", "other", "web")), &req),
        Err(Denied::SourceNotAllowed)
    );
}

#[test]
fn a_caller_without_identity_is_denied() {
    let s = snapshot(Options::default());
    let req = Request::tcp(Some(80));
    assert_eq!(
        s.authorize(&id("cluster.local", "shop", "api"), None, &req),
        Err(Denied::Unauthenticated)
    );
}

#[test]
fn an_identity_from_another_trust_domain_is_denied() {
    let s = snapshot(Options::default());
    let req = Request::tcp(Some(80));
    let api = id("cluster.local", "shop", "api");
    assert_eq!(
        s.authorize(&api, Some(&id("evil.example", "shop", "web")), &req),
        Err(Denied::ForeignTrustDomain)
    );
}

#[test]
fn permissive_mode_allows_what_policy_does_not() {
    let s = snapshot(Options::default().permissive(true));
    let req = Request::udp(Some(53));
    let api = id("cluster.local", "shop", "api");
    assert_eq!(
        s.authorize(&api, Some(&id("cluster.local", "x", "y")), &req),
        Ok(Permit::Permissive)
    );
}

#[test]
fn a_tcp_only_target_does_not_open_udp() {
    let s = snapshot(Options::default());
    let api = id("cluster.local", "shop", "api");
    let web = id("cluster.local", "shop", "web");
    assert!(
        s.authorize(&api, Some(&web), &Request::tcp(Some(5432)))
            .is_ok()
    );
    assert_eq!(
        s.authorize(&api, Some(&web), &Request::udp(Some(53))),
        Err(Denied::NoRuleMatched { targets: 1 })
    );
}
