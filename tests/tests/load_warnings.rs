//! Policy that loads (no error) but carries warnings, from the loader or from compilation, and
//! what each warned-about construct then does: grant nothing, or replace an earlier definition.

use smi_core::model::RouteKind;
use smi_core::policy::{Denied, Miss};
use smi_core::{Format, Loader, Snapshot};
use smi_tests::{Decision, decide, granted, headers, http, spiffe, warned};

fn target(version: &str, rules: &str, sources: &str) -> String {
    format!(
        "apiVersion: access.smi-spec.io/{version}\nkind: TrafficTarget\nmetadata: {{name: t, namespace: shop}}\n\
         spec: {{destination: {{kind: ServiceAccount, name: api}}, sources: {sources}, rules: {rules}}}\n"
    )
}

const WEB: &str = "[{kind: ServiceAccount, name: web}]";
const ROUTES: &str = "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: routes, namespace: shop}\nspec: {matches: [{name: all}]}\n";

fn web_calls_api(snapshot: &Snapshot, method: &str, path: &str) -> Decision {
    let h = headers(&[]);
    decide(
        snapshot,
        &spiffe("shop", "api"),
        &spiffe("shop", "web"),
        &http(Some(80), method, path, &h),
    )
}

const NO_RULE: Decision = Decision::Denied(Denied::NoRuleMatched { targets: 1 });
#[test]
fn a_rule_naming_a_missing_route_group_grants_nothing() {
    let snapshot = warned(
        &[&target(
            "v1alpha3",
            "[{kind: HTTPRouteGroup, name: missing}]",
            WEB,
        )],
        &[],
        &[
            "w.yaml:doc 1: TrafficTarget shop/t: spec.rules[0].name: HTTPRouteGroup shop/missing does not exist; this rule grants nothing",
        ],
    );
    assert_eq!(web_calls_api(&snapshot, "GET", "/"), NO_RULE);
    let h = headers(&[]);
    let explained = snapshot.explain(
        &spiffe("shop", "api"),
        Some(&spiffe("shop", "web")),
        &http(Some(80), "GET", "/", &h),
    );
    assert_eq!(
        explained.misses.iter().map(|(_, m)| *m).collect::<Vec<_>>(),
        vec![Miss::NoHttpRuleMatched]
    );
}

#[test]
fn a_missing_group_does_not_stop_the_targets_other_rules() {
    let rules = "[{kind: HTTPRouteGroup, name: missing}, {kind: HTTPRouteGroup, name: routes}]";
    let snapshot = warned(
        &[&target("v1alpha3", rules, WEB), ROUTES],
        &[],
        &[
            "w.yaml:doc 1: TrafficTarget shop/t: spec.rules[0].name: HTTPRouteGroup shop/missing does not exist; this rule grants nothing",
        ],
    );
    assert_eq!(
        web_calls_api(&snapshot, "GET", "/x"),
        granted("t", 1, RouteKind::Http, "routes", Some("all"))
    );
}

#[test]
fn a_rule_naming_a_missing_match_grants_nothing_for_it() {
    let rules = "[{kind: HTTPRouteGroup, name: routes, matches: [nope]}]";
    let snapshot = warned(
        &[&target("v1alpha3", rules, WEB), ROUTES],
        &[],
        &[
            r#"w.yaml:doc 1: TrafficTarget shop/t: spec.rules[0].matches: HTTPRouteGroup shop/routes has no match named "nope"; it grants nothing"#,
        ],
    );
    assert_eq!(web_calls_api(&snapshot, "GET", "/"), NO_RULE);
}

#[test]
fn a_dangling_tcp_route_next_to_http_rules_closes_every_port() {
    let rules = "[{kind: TCPRoute, name: gone}, {kind: HTTPRouteGroup, name: routes}]";
    let snapshot = warned(
        &[&target("v1alpha3", rules, WEB), ROUTES],
        &[],
        &[
            "w.yaml:doc 1: TrafficTarget shop/t: spec.rules[0].name: TCPRoute shop/gone does not exist; this rule grants nothing",
        ],
    );
    assert_eq!(web_calls_api(&snapshot, "GET", "/"), NO_RULE);
}

#[test]
fn matches_on_an_l4_rule_are_ignored_with_a_warning() {
    let rules = "[{kind: TCPRoute, name: tcp, matches: [x]}]";
    let tcp = "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {name: tcp, namespace: shop}\nspec: {matches: {ports: []}}\n";
    let snapshot = warned(
        &[&target("v1alpha3", rules, WEB), tcp],
        &[
            "w.yaml:doc 1: TrafficTarget shop/t: spec.rules[0].matches: ignored: TCPRoute has no named matches",
        ],
        &[],
    );
    assert_eq!(
        web_calls_api(&snapshot, "GET", "/"),
        granted("t", 0, RouteKind::Tcp, "tcp", None)
    );
}

#[test]
fn an_older_target_without_sources_or_rules_loads_but_grants_nothing() {
    let snapshot = warned(
        &[&target("v1alpha2", "[]", "[]")],
        &[
            "w.yaml:doc 1: TrafficTarget shop/t: spec.sources: no sources: this TrafficTarget grants nothing",
            "w.yaml:doc 1: TrafficTarget shop/t: spec.rules: no rules: this TrafficTarget grants nothing",
        ],
        &[],
    );
    assert_eq!(
        web_calls_api(&snapshot, "GET", "/"),
        Decision::Denied(Denied::SourceNotAllowed)
    );
}

#[test]
fn a_group_without_matches_loads_with_a_warning_and_grants_nothing() {
    let empty = ROUTES.replace("spec: {matches: [{name: all}]}", "spec: {}");
    let snapshot = warned(
        &[
            &target("v1alpha3", "[{kind: HTTPRouteGroup, name: routes}]", WEB),
            &empty,
        ],
        &[
            "w.yaml:doc 2: HTTPRouteGroup shop/routes: spec.matches: no matches: rules that reference this group grant nothing",
        ],
        &[],
    );
    assert_eq!(web_calls_api(&snapshot, "GET", "/"), NO_RULE);
}

#[test]
fn a_duplicate_name_replaces_the_earlier_definition() {
    let first = target(
        "v1alpha3",
        "[{kind: HTTPRouteGroup, name: routes}]",
        "[{kind: ServiceAccount, name: old}]",
    );
    let second = target("v1alpha3", "[{kind: HTTPRouteGroup, name: routes}]", WEB);
    let snapshot = warned(
        &[&first, ROUTES, &second],
        &[
            "w.yaml:doc 3: TrafficTarget shop/t: duplicate name; this definition replaces the one at w.yaml:doc 1",
        ],
        &[],
    );
    assert_eq!(snapshot.policy().targets.len(), 1);
    assert_eq!(
        web_calls_api(&snapshot, "GET", "/"),
        granted("t", 0, RouteKind::Http, "routes", Some("all"))
    );
    let h = headers(&[]);
    let old = decide(
        &snapshot,
        &spiffe("shop", "api"),
        &spiffe("shop", "old"),
        &http(Some(80), "GET", "/", &h),
    );
    assert_eq!(old, Decision::Denied(Denied::SourceNotAllowed));
}

#[test]
fn duplicates_across_files_name_both_files_and_kinds_have_separate_names() {
    let tcp = "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {name: dns, namespace: shop}\nspec: {matches: {ports: [53]}}\n";
    let mut loader = Loader::new();
    loader.add_text(
        "a.yaml",
        &format!("{tcp}---\n{}", tcp.replace("TCPRoute", "UDPRoute")),
        Format::Yaml,
    );
    loader.add_text("b.yaml", &tcp.replace("[53]", "[5353]"), Format::Yaml);
    let loaded = loader.finish();
    let warnings: Vec<String> = loaded.warnings().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "b.yaml:doc 1: TCPRoute shop/dns: duplicate name; this definition replaces the one at a.yaml:doc 1"
        ]
    );
    let routes: Vec<_> = loaded
        .policy
        .l4_routes
        .iter()
        .map(|r| (r.protocol.route_kind(), r.ports.clone()))
        .collect();
    assert_eq!(
        routes,
        [(RouteKind::Udp, vec![53]), (RouteKind::Tcp, vec![5353])]
    );
}

#[test]
fn a_duplicate_match_name_in_a_group_is_warned_and_both_are_selected() {
    let group = ROUTES.replace(
        "[{name: all}]",
        "[{name: m, pathRegex: /a}, {name: m, pathRegex: /b}]",
    );
    let rules = "[{kind: HTTPRouteGroup, name: routes, matches: [m]}]";
    let snapshot = warned(
        &[&group, &target("v1alpha3", rules, WEB)],
        &[
            r#"w.yaml:doc 1: HTTPRouteGroup shop/routes: spec.matches[1].name: duplicate match name "m""#,
        ],
        &[],
    );
    for path in ["/a", "/b"] {
        assert_eq!(
            web_calls_api(&snapshot, "GET", path),
            granted("t", 0, RouteKind::Http, "routes", Some("m")),
            "{path}"
        );
    }
    assert_eq!(web_calls_api(&snapshot, "GET", "/c"), NO_RULE);
}
