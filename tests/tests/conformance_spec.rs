//! The SMI conformance suite's traffic-spec steps (CONFORMANCE.md §2, TSC-1.1.1 to TSC-1.2.4), at
//! policy level, including the manifests' quirks: top-level `matches` under specs v1alpha4 and a
//! string `destination.port` under access v1alpha3.

use smi_core::model::{MethodSet, RouteKind};
use smi_core::policy::{Denied, Miss};
use smi_core::{Options, PathMatch, Severity};
use smi_tests::{Cluster, Decision, NAMESPACE, decide, granted, headers, http, load_data, sa};

const DIR: &str = "conformance/traffic-spec";

fn after_fixture() -> Cluster {
    let mut cluster = Cluster::default();
    let loaded = cluster.apply(&format!("{DIR}/02-install.yaml"));
    assert_eq!((loaded.skipped, loaded.diagnostics.len()), (9, 0));
    assert!(cluster.is_empty());
    cluster
}

/// TSC-1.2.1: 03-install applied, and its assert holds.
fn after_path_policy() -> Cluster {
    let mut cluster = after_fixture();
    cluster.apply(&format!("{DIR}/03-install.yaml"));
    cluster.assert_present(&format!("{DIR}/03-assert.yaml"));
    cluster
}

/// TSC-1.2.3: 05-install applied on top of 03 (an in-place update of both objects).
fn after_method_policy() -> Cluster {
    let mut cluster = after_path_policy();
    cluster.apply(&format!("{DIR}/05-install.yaml"));
    cluster.assert_present(&format!("{DIR}/05-assert.yaml"));
    cluster
}

fn allowed_by_test_match() -> Decision {
    granted(
        "service-targets",
        0,
        RouteKind::Http,
        "http-rg",
        Some("testMatch"),
    )
}

fn no_rule_matched() -> Decision {
    Decision::Denied(Denied::NoRuleMatched { targets: 1 })
}

/// app-a calls app-b on 9091: `(method, path, expected)` for each request, in order.
fn check_traffic(cluster: &Cluster, options: Options, cases: &[(&str, &str, Decision)]) {
    let snapshot = cluster.snapshot(options);
    let h = headers(&[("ServiceName", "app-a")]);
    for (method, path, expected) in cases {
        let request = http(Some(9091), method, path, &h);
        let decision = decide(&snapshot, &sa("service-b"), &sa("service-a"), &request);
        assert_eq!(&decision, expected, "{method} {path}");
    }
}

#[test]
fn crd_step_registers_http_route_group_and_its_kind_parses() {
    // TSC-1.1.1.
    let crd = load_data(&format!("{DIR}/01-assert.yaml"));
    assert_eq!((crd.skipped, crd.diagnostics.len()), (1, 0));
    let text = smi_tests::data_text(&format!("{DIR}/01-assert.yaml"));
    assert!(text.contains("group: specs.smi-spec.io") && text.contains("kind: HTTPRouteGroup"));
    let loaded = smi_tests::load_valid(
        "minimal.yaml",
        "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: g}\nspec: {matches: [{name: m}]}\n",
    );
    assert_eq!(loaded.policy.route_groups[0].matches[0].name, "m");
}

#[test]
fn fixture_and_test_step_files_are_skipped_without_diagnostics() {
    // TSC-1.1.1 (step 02): the fixture is the access suite's, byte for byte.
    for (file, skipped) in [
        ("02-install.yaml", 9),
        ("02-assert.yaml", 9),
        ("04-trafficPath.yaml", 1),
        ("06-trafficMethod.yaml", 1),
    ] {
        let loaded = load_data(&format!("{DIR}/{file}"));
        assert!(
            loaded.diagnostics.is_empty() && loaded.policy.is_empty(),
            "{file}: {:?}",
            loaded.diagnostics
        );
        assert_eq!(loaded.skipped, skipped, "{file}");
    }
    assert_eq!(
        smi_tests::data_text(&format!("{DIR}/02-install.yaml")),
        smi_tests::data_text("conformance/traffic-access/02-install.yaml")
    );
}

#[test]
fn path_policy_reads_top_level_matches_and_ignores_the_string_port_with_a_warning() {
    // TSC-1.2.1, the quirks: both objects load; `port: "9091"` is ignored and said so.
    let loaded = load_data(&format!("{DIR}/03-install.yaml"));
    assert!(loaded.is_valid(), "{}", smi_tests::show(&loaded));
    let warnings: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        vec![format!(
            "conformance/traffic-spec/03-install.yaml:doc 2: TrafficTarget {NAMESPACE}/service-targets: \
             spec.destination.port: removed in access v1alpha3 and ignored; restrict ports with a TCPRoute rule"
        )]
    );
    assert!(
        loaded
            .diagnostics
            .iter()
            .all(|d| d.severity == Severity::Warning)
    );
    let group = &loaded.policy.route_groups[0];
    assert_eq!(
        (group.meta.name.as_str(), group.matches.len()),
        ("http-rg", 1)
    );
    let m = &group.matches[0];
    assert_eq!(
        (m.name.as_str(), m.path_regex.as_deref(), m.methods),
        ("testMatch", Some("/metrics"), MethodSet::ANY)
    );
    let target = &loaded.policy.targets[0];
    assert_eq!(target.destination_port, None);
    assert_eq!(target.rules[0].matches, Some(vec!["testMatch".to_owned()]));
}

#[test]
fn path_policy_allows_metrics_and_denies_echo() {
    // TSC-1.2.2 (04-trafficPath): GET /metrics succeeds, then GET /echo is denied.
    let cluster = after_path_policy();
    let cases = [
        ("GET", "/metrics", allowed_by_test_match()),
        ("GET", "/echo", no_rule_matched()),
        // methods ["*"]: any method on /metrics, and the anchor at the start admits sub-paths.
        ("POST", "/metrics", allowed_by_test_match()),
        ("PROPFIND", "/metrics", allowed_by_test_match()),
        ("GET", "/metrics?x=1", allowed_by_test_match()),
        ("GET", "/echo/metrics", no_rule_matched()),
    ];
    check_traffic(&cluster, Options::default(), &cases);
}

#[test]
fn path_policy_gives_the_same_answers_when_anchored_at_both_ends() {
    // CONFORMANCE.md: `/metrics` cannot tell prefix anchoring from a full match.
    let cluster = after_path_policy();
    let cases = [
        ("GET", "/metrics", allowed_by_test_match()),
        ("GET", "/echo", no_rule_matched()),
    ];
    check_traffic(
        &cluster,
        Options::default().path_match(PathMatch::Full),
        &cases,
    );
}

#[test]
fn path_policy_denial_is_explained_by_the_http_route() {
    let snapshot = after_path_policy().snapshot(Options::default());
    let h = headers(&[]);
    let explained = snapshot.explain(
        &sa("service-b"),
        Some(&sa("service-a")),
        &http(Some(9091), "GET", "/echo", &h),
    );
    assert_eq!(
        explained.decision,
        Err(Denied::NoRuleMatched { targets: 1 })
    );
    let misses: Vec<_> = explained
        .misses
        .iter()
        .map(|(m, miss)| (m.name.as_str(), *miss))
        .collect();
    assert_eq!(misses, vec![("service-targets", Miss::NoHttpRuleMatched)]);
}

#[test]
fn method_policy_replaces_the_match_in_place() {
    // TSC-1.2.3: same object names, new content; no duplicate is left behind.
    let cluster = after_method_policy();
    let policy = cluster.policy();
    assert_eq!(
        (
            policy.route_groups.len(),
            policy.targets.len(),
            cluster.len()
        ),
        (1, 1, 2)
    );
    let m = &policy.route_groups[0].matches[0];
    assert_eq!(
        (m.name.as_str(), m.path_regex.as_deref()),
        ("testMatch", Some(".*"))
    );
    assert_eq!(m.methods.to_string(), "GET");
    let loaded = load_data(&format!("{DIR}/05-install.yaml"));
    assert_eq!(
        loaded.warnings().count(),
        1,
        "the destination.port quirk again"
    );
}

#[test]
fn method_policy_allows_get_and_denies_post() {
    // TSC-1.2.4 (06-trafficMethod): GET /echo succeeds, then POST /echo (empty body) is denied.
    let cases = [
        ("GET", "/echo", allowed_by_test_match()),
        ("POST", "/echo", no_rule_matched()),
        ("GET", "/metrics", allowed_by_test_match()),
        ("HEAD", "/echo", no_rule_matched()),
        // Method names are case-sensitive, as HTTP's are.
        ("get", "/echo", no_rule_matched()),
    ];
    check_traffic(&after_method_policy(), Options::default(), &cases);
    check_traffic(
        &after_method_policy(),
        Options::default().path_match(PathMatch::Full),
        &cases[..2],
    );
}

#[test]
fn the_path_step_answers_change_once_the_method_policy_is_applied() {
    // The update must take effect: /echo flips from denied to allowed, POST /metrics the other way.
    let before = after_path_policy().snapshot(Options::default());
    let after = after_method_policy().snapshot(Options::default());
    let h = headers(&[]);
    let (b, a) = (sa("service-b"), sa("service-a"));
    let echo = http(Some(9091), "GET", "/echo", &h);
    let post_metrics = http(Some(9091), "POST", "/metrics", &h);
    assert_eq!(decide(&before, &b, &a, &echo), no_rule_matched());
    assert_eq!(decide(&after, &b, &a, &echo), allowed_by_test_match());
    assert_eq!(
        decide(&before, &b, &a, &post_metrics),
        allowed_by_test_match()
    );
    assert_eq!(decide(&after, &b, &a, &post_metrics), no_rule_matched());
}

#[test]
fn spec_policies_grant_only_service_a() {
    for cluster in [after_path_policy(), after_method_policy()] {
        let snapshot = cluster.snapshot(Options::default());
        let h = headers(&[]);
        let request = http(Some(9091), "GET", "/metrics", &h);
        let cases = [
            ("service-b", "service-c", Denied::SourceNotAllowed),
            ("service-a", "service-b", Denied::NoTargetsForDestination),
            ("service-c", "service-a", Denied::NoTargetsForDestination),
        ];
        for (to, from, expected) in cases {
            assert_eq!(
                decide(&snapshot, &sa(to), &sa(from), &request),
                Decision::Denied(expected),
                "{from} -> {to}"
            );
        }
    }
}
