//! The SMI conformance suite's traffic-access steps (CONFORMANCE.md §1, TA-1.1.1 to TA-1.2.5), at
//! policy level: each step's manifests applied to a model of the namespace, then the step's
//! traffic (one `GET /echo` from app-a, SA service-a, to app-b, SA service-b, on 9091) decided.

use smi_core::Options;
use smi_core::model::RouteKind;
use smi_core::policy::{Denied, Miss, Request};
use smi_tests::{Cluster, Decision, NAMESPACE, decide, granted, headers, http, load_data, sa};

const DIR: &str = "conformance/traffic-access";

/// The state after steps 01 and 02 (CRDs and fixture APP-ACCESS): no SMI policy at all.
fn after_fixture() -> Cluster {
    let mut cluster = Cluster::default();
    let loaded = cluster.apply(&format!("{DIR}/02-install.yaml"));
    assert_eq!(
        loaded.skipped, 9,
        "3 ServiceAccounts, 3 Deployments, 3 Services"
    );
    assert!(cluster.is_empty());
    cluster
}

/// The state after TA-1.2.2 (04-install and its assert).
fn after_allow_policy() -> Cluster {
    let mut cluster = after_fixture();
    let loaded = cluster.apply(&format!("{DIR}/04-install.yaml"));
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    cluster.assert_present(&format!("{DIR}/04-assert.yaml"));
    cluster
}

/// The handlers' traffic: app-a calls `GET http://app-b...:9091/echo` with `ServiceName: app-a`.
fn echo_from_a_to_b(cluster: &Cluster) -> Decision {
    let h = headers(&[("ServiceName", "app-a")]);
    let snapshot = cluster.snapshot(Options::default());
    decide(
        &snapshot,
        &sa("service-b"),
        &sa("service-a"),
        &http(Some(9091), "GET", "/echo", &h),
    )
}

fn allowed_by_tcp_route() -> Decision {
    granted(
        "service-targets",
        0,
        RouteKind::Tcp,
        "service-tcp-route",
        None,
    )
}

#[test]
fn crd_step_registers_traffic_target_and_its_kind_parses() {
    // TA-1.1.1: the CRD document itself is not policy, and the kind it registers loads.
    let crd = load_data(&format!("{DIR}/01-assert.yaml"));
    assert_eq!((crd.skipped, crd.diagnostics.len()), (1, 0));
    let text = smi_tests::data_text(&format!("{DIR}/01-assert.yaml"));
    assert!(text.contains("group: access.smi-spec.io") && text.contains("kind: TrafficTarget"));
    let minimal = "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: t}\n\
                   spec: {destination: {kind: ServiceAccount, name: b}, sources: [{kind: ServiceAccount, name: a}], rules: [{kind: TCPRoute, name: r}]}\n";
    let loaded = smi_tests::load_valid("minimal.yaml", minimal);
    assert_eq!(loaded.policy.targets.len(), 1);
}

#[test]
fn fixture_step_files_are_skipped_without_diagnostics() {
    // TA-1.1.2, and every kuttl TestStep that only names a custom test.
    for (file, skipped) in [
        ("02-install.yaml", 9),
        ("02-assert.yaml", 9),
        ("03-trafficDefault.yaml", 1),
        ("05-trafficAllowed.yaml", 1),
        ("06-install.yaml", 1),
        ("07-trafficBlocked.yaml", 1),
    ] {
        let loaded = load_data(&format!("{DIR}/{file}"));
        assert!(
            loaded.diagnostics.is_empty(),
            "{file}: {:?}",
            loaded.diagnostics
        );
        assert!(loaded.policy.is_empty(), "{file} holds no SMI policy");
        assert_eq!(loaded.skipped, skipped, "{file}");
    }
}

#[test]
fn default_deny_without_any_traffic_target() {
    // TA-1.2.1 (03-trafficDefault): no policy, so the echo is denied.
    let decision = echo_from_a_to_b(&after_fixture());
    assert_eq!(decision, Decision::Denied(Denied::NoTargetsForDestination));
}

#[test]
fn allow_policy_loads_the_tcp_route_and_the_traffic_target() {
    // TA-1.2.2: both objects are accepted with the values written.
    let policy = after_allow_policy().policy();
    assert_eq!(policy.l4_routes.len(), 1);
    assert_eq!(policy.l4_routes[0].meta.name, "service-tcp-route");
    assert!(
        policy.l4_routes[0].ports.is_empty(),
        "ports: [] is every port"
    );
    let target = &policy.targets[0];
    assert_eq!(
        (target.meta.name.as_str(), target.meta.namespace.as_str()),
        ("service-targets", NAMESPACE)
    );
    assert_eq!(target.destination, sa("service-b").account);
    assert_eq!(target.sources, vec![sa("service-a").account]);
    assert_eq!(
        (target.rules[0].kind, target.rules[0].name.as_str()),
        (RouteKind::Tcp, "service-tcp-route")
    );
    assert_eq!(target.rules.len(), 1);
}

#[test]
fn tcp_route_with_all_ports_allows_the_http_echo() {
    // TA-1.2.3 (05-trafficAllowed): a target with only an L4 rule admits HTTP on any path/method.
    let cluster = after_allow_policy();
    assert_eq!(echo_from_a_to_b(&cluster), allowed_by_tcp_route());
    let snapshot = cluster.snapshot(Options::default());
    let h = headers(&[]);
    for (method, path, port) in [
        ("POST", "/call", 9091),
        ("DELETE", "/metrics", 9091),
        ("GET", "/", 8080),
    ] {
        let decision = decide(
            &snapshot,
            &sa("service-b"),
            &sa("service-a"),
            &http(Some(port), method, path, &h),
        );
        assert_eq!(
            decision,
            allowed_by_tcp_route(),
            "{method} {path} on {port}"
        );
    }
    let tcp = decide(
        &snapshot,
        &sa("service-b"),
        &sa("service-a"),
        &Request::tcp(Some(9091)),
    );
    assert_eq!(tcp, allowed_by_tcp_route());
}

#[test]
fn allow_policy_opens_nothing_else() {
    let snapshot = after_allow_policy().snapshot(Options::default());
    let h = headers(&[]);
    let echo = http(Some(9091), "GET", "/echo", &h);
    let cases = [
        // (to, from, request, expected)
        ("service-b", "service-c", echo, Denied::SourceNotAllowed),
        (
            "service-a",
            "service-b",
            echo,
            Denied::NoTargetsForDestination,
        ),
        (
            "service-c",
            "service-a",
            echo,
            Denied::NoTargetsForDestination,
        ),
        (
            "service-b",
            "service-a",
            Request::udp(Some(9091)),
            Denied::NoRuleMatched { targets: 1 },
        ),
    ];
    for (to, from, request, expected) in cases {
        let decision = decide(&snapshot, &sa(to), &sa(from), &request);
        assert_eq!(decision, Decision::Denied(expected), "{from} -> {to}");
    }
    let other_ns = smi_tests::spiffe("other", "service-a");
    let decision = decide(&snapshot, &sa("service-b"), &other_ns, &echo);
    assert_eq!(decision, Decision::Denied(Denied::SourceNotAllowed));
    let explained = snapshot.explain(
        &sa("service-b"),
        Some(&sa("service-a")),
        &Request::udp(Some(9091)),
    );
    let misses: Vec<_> = explained
        .misses
        .iter()
        .map(|(m, miss)| (m.name.as_str(), *miss))
        .collect();
    assert_eq!(misses, vec![("service-targets", Miss::NoRuleForProtocol)]);
}

#[test]
fn deleting_the_policy_removes_both_objects() {
    // TA-1.2.4: 06-install deletes both objects, and 06-errors asserts they are gone.
    let deletes =
        smi_tests::test_step_deletes(&smi_tests::data_text(&format!("{DIR}/06-install.yaml")));
    let owned = |k: &str, n: &str| [k.to_owned(), NAMESPACE.to_owned(), n.to_owned()];
    let expected = [
        owned("TCPRoute", "service-tcp-route"),
        owned("TrafficTarget", "service-targets"),
    ];
    assert_eq!(deletes, expected);
    let mut cluster = after_allow_policy();
    assert_eq!(cluster.len(), 2);
    assert_eq!(
        cluster.run_test_step_deletes(&format!("{DIR}/06-install.yaml")),
        2
    );
    cluster.assert_absent(&format!("{DIR}/06-errors.yaml"));
    assert!(cluster.is_empty());
}

#[test]
fn traffic_is_blocked_again_after_the_delete() {
    // TA-1.2.5 (07-trafficBlocked): the snapshot compiled after the delete denies; the one
    // compiled before it (held by nobody any more) allowed.
    let mut cluster = after_allow_policy();
    let before = cluster.snapshot(Options::default());
    cluster.run_test_step_deletes(&format!("{DIR}/06-install.yaml"));
    let after = cluster.snapshot(Options::default());
    let h = headers(&[("ServiceName", "app-a")]);
    let echo = http(Some(9091), "GET", "/echo", &h);
    assert_eq!(
        decide(&before, &sa("service-b"), &sa("service-a"), &echo),
        allowed_by_tcp_route()
    );
    assert_eq!(
        decide(&after, &sa("service-b"), &sa("service-a"), &echo),
        Decision::Denied(Denied::NoTargetsForDestination)
    );
}

#[test]
fn deleting_only_the_tcp_route_leaves_a_target_that_grants_nothing() {
    // Not a suite step: half of TA-1.2.4 applied. The dangling rule fails closed, with a warning.
    let mut cluster = after_allow_policy();
    assert!(cluster.delete("TCPRoute", NAMESPACE, "service-tcp-route"));
    let snapshot = cluster.snapshot(Options::default());
    let warnings: Vec<String> = snapshot
        .warnings()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        warnings,
        vec![format!(
            "conformance/traffic-access/04-install.yaml:doc 2: TrafficTarget {NAMESPACE}/service-targets: \
             spec.rules[0].name: TCPRoute {NAMESPACE}/service-tcp-route does not exist; this rule grants nothing"
        )]
    );
    assert_eq!(
        echo_from_a_to_b(&cluster),
        Decision::Denied(Denied::NoRuleMatched { targets: 1 })
    );
}

#[test]
fn permissive_mode_would_pass_the_allow_step_but_not_the_deny_steps() {
    // Why the access suite must run with permissive mode off.
    let snapshot = after_fixture().snapshot(Options::default().permissive(true));
    let h = headers(&[]);
    let decision = decide(
        &snapshot,
        &sa("service-b"),
        &sa("service-a"),
        &http(Some(9091), "GET", "/echo", &h),
    );
    assert_eq!(decision, Decision::Permissive);
}
