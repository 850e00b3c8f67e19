//! The worked access examples of SPEC-NOTES.md (§1 TrafficTarget, §2 HTTPRouteGroup, §3 L4 routes)
//! decided request by request. The rows of §7.3 are in `spec_notes_choices.rs`.

use smi_core::Options;
use smi_core::model::RouteKind;
use smi_core::policy::{Denied, Miss, Request};
use smi_tests::{Decision, decide, granted, headers, http, snapshot_of, spiffe};

/// §1.3 and §2.3: api-service, with two targets. prometheus may `GET /metrics`; website and
/// payments may call `/api` with any method. Both go through TCPRoute port 8080.
const API_SERVICE: &str = r#"
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: api-service-port, namespace: default}
spec: {matches: {ports: [8080]}}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: api-service-routes, namespace: default}
spec:
  matches:
  - {name: api, pathRegex: /api, methods: ["*"]}
  - {name: metrics, pathRegex: /metrics, methods: [GET]}
  - name: iphone-users
    pathRegex: "/api/.*"
    methods: [GET, HEAD]
    headers:
      user-agent: ".*iPhone.*"
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: api-service-metrics, namespace: default}
spec:
  destination: {kind: ServiceAccount, name: api-service, namespace: default}
  rules:
  - {kind: TCPRoute, name: api-service-port}
  - {kind: HTTPRouteGroup, name: api-service-routes, matches: [metrics]}
  sources:
  - {kind: ServiceAccount, name: prometheus, namespace: default}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: api-service-api, namespace: default}
spec:
  destination: {kind: ServiceAccount, name: api-service, namespace: default}
  rules:
  - {kind: TCPRoute, name: api-service-port}
  - {kind: HTTPRouteGroup, name: api-service-routes, matches: [api]}
  sources:
  - {kind: ServiceAccount, name: website, namespace: default}
  - {kind: ServiceAccount, name: payments, namespace: default}
"#;

fn by(target: &str, matched: &str) -> Decision {
    granted(
        target,
        1,
        RouteKind::Http,
        "api-service-routes",
        Some(matched),
    )
}

#[test]
fn api_service_targets_pair_their_own_sources_with_their_own_routes() {
    let snapshot = snapshot_of(API_SERVICE, Options::default());
    assert!(snapshot.warnings().is_empty(), "{:?}", snapshot.warnings());
    let api = spiffe("default", "api-service");
    let h = headers(&[]);
    let no_rule = Decision::Denied(Denied::NoRuleMatched { targets: 1 });
    let cases = [
        (
            "prometheus",
            "GET",
            "/metrics",
            by("api-service-metrics", "metrics"),
        ),
        ("prometheus", "POST", "/metrics", no_rule.clone()),
        // No cross product: prometheus gets nothing of the api target's routes, and back.
        ("prometheus", "GET", "/api", no_rule.clone()),
        ("website", "GET", "/metrics", no_rule.clone()),
        ("website", "GET", "/api", by("api-service-api", "api")),
        (
            "website",
            "GET",
            "/api/v1/users",
            by("api-service-api", "api"),
        ),
        (
            "payments",
            "DELETE",
            "/api/orders",
            by("api-service-api", "api"),
        ),
        ("payments", "PATCH", "/apis", by("api-service-api", "api")),
        ("payments", "GET", "/v1/api", no_rule),
        (
            "billing",
            "GET",
            "/api",
            Decision::Denied(Denied::SourceNotAllowed),
        ),
    ];
    for (source, method, path, expected) in cases {
        let decision = decide(
            &snapshot,
            &api,
            &spiffe("default", source),
            &http(Some(8080), method, path, &h),
        );
        assert_eq!(decision, expected, "{source}: {method} {path}");
    }
}

#[test]
fn api_service_tcp_route_restricts_http_to_port_8080() {
    let snapshot = snapshot_of(API_SERVICE, Options::default());
    let (api, prometheus) = (
        spiffe("default", "api-service"),
        spiffe("default", "prometheus"),
    );
    let h = headers(&[]);
    let request = http(Some(9090), "GET", "/metrics", &h);
    let explained = snapshot.explain(&api, Some(&prometheus), &request);
    assert_eq!(
        explained.decision,
        Err(Denied::NoRuleMatched { targets: 1 })
    );
    let misses: Vec<_> = explained
        .misses
        .iter()
        .map(|(m, miss)| (m.name.as_str(), *miss))
        .collect();
    assert_eq!(
        misses,
        vec![("api-service-metrics", Miss::PortNotInL4Rules)]
    );
    // With no port in the question (an offline check), the port list does not apply.
    let offline = http(None, "GET", "/metrics", &h);
    assert_eq!(
        decide(&snapshot, &api, &prometheus, &offline),
        by("api-service-metrics", "metrics")
    );
    // Raw TCP to 8080 is granted by the TCPRoute rule (index 0).
    let tcp = decide(&snapshot, &api, &prometheus, &Request::tcp(Some(8080)));
    assert_eq!(
        tcp,
        granted(
            "api-service-metrics",
            0,
            RouteKind::Tcp,
            "api-service-port",
            None
        )
    );
}

#[test]
fn a_caller_in_two_targets_is_allowed_by_either() {
    // Targets are unioned: add prometheus to the api target too.
    let yaml = API_SERVICE.replace(
        "  - {kind: ServiceAccount, name: payments, namespace: default}",
        "  - {kind: ServiceAccount, name: payments, namespace: default}\n  - {kind: ServiceAccount, name: prometheus}",
    );
    let snapshot = snapshot_of(&yaml, Options::default());
    let (api, prometheus) = (
        spiffe("default", "api-service"),
        spiffe("default", "prometheus"),
    );
    let h = headers(&[]);
    let cases = [
        ("GET", "/metrics", by("api-service-metrics", "metrics")),
        ("PUT", "/api", by("api-service-api", "api")),
        (
            "PUT",
            "/metrics",
            Decision::Denied(Denied::NoRuleMatched { targets: 2 }),
        ),
    ];
    for (method, path, expected) in cases {
        assert_eq!(
            decide(
                &snapshot,
                &api,
                &prometheus,
                &http(Some(8080), method, path, &h)
            ),
            expected,
            "{method} {path}"
        );
    }
}

/// §1.1 and §3: TCP on 8300-8302, UDP only on 8301-8302.
const L4_EXAMPLE: &str = r#"
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: tcp-ports, namespace: default}
spec: {matches: {ports: [8300, 8301, 8302]}}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: UDPRoute
metadata: {name: udp-ports, namespace: default}
spec: {matches: {ports: [8301, 8302]}}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: consul, namespace: default}
spec:
  destination: {kind: ServiceAccount, name: consul-server}
  sources: [{kind: ServiceAccount, name: consul-client}]
  rules: [{kind: TCPRoute, name: tcp-ports}, {kind: UDPRoute, name: udp-ports}]
"#;

#[test]
fn l4_example_opens_tcp_on_three_ports_and_udp_on_two() {
    let snapshot = snapshot_of(L4_EXAMPLE, Options::default());
    let (server, client) = (
        spiffe("default", "consul-server"),
        spiffe("default", "consul-client"),
    );
    let tcp = granted("consul", 0, RouteKind::Tcp, "tcp-ports", None);
    let udp = granted("consul", 1, RouteKind::Udp, "udp-ports", None);
    let denied = Decision::Denied(Denied::NoRuleMatched { targets: 1 });
    let cases = [
        (Request::tcp(Some(8300)), tcp.clone()),
        (Request::tcp(Some(8301)), tcp.clone()),
        (Request::tcp(Some(8302)), tcp.clone()),
        (Request::tcp(Some(8303)), denied.clone()),
        (Request::udp(Some(8300)), denied.clone()),
        (Request::udp(Some(8301)), udp.clone()),
        (Request::udp(Some(8302)), udp),
        (Request::udp(Some(53)), denied),
    ];
    for (request, expected) in cases {
        assert_eq!(
            decide(&snapshot, &server, &client, &request),
            expected,
            "{request:?}"
        );
    }
    let explained = snapshot.explain(&server, Some(&client), &Request::udp(Some(8300)));
    assert_eq!(
        explained.misses.iter().map(|(_, m)| *m).collect::<Vec<_>>(),
        vec![Miss::PortNotInL4Rules]
    );
    // HTTP rides on TCP: only-L4 targets admit it on the TCP ports.
    let h = headers(&[]);
    assert_eq!(
        decide(
            &snapshot,
            &server,
            &client,
            &http(Some(8300), "GET", "/v1/kv", &h)
        ),
        tcp
    );
}
