//! The access rows of SPEC-NOTES.md §7.3 (recommended choices where the spec is silent) and the
//! §1/§2 rules they rest on: omitted `matches`, subject namespaces, `pathRegex` anchoring, absent
//! path and methods, unknown fields.

use smi_core::model::RouteKind;
use smi_core::policy::Denied;
use smi_core::{Options, PathMatch};
use smi_tests::{Decision, decide, granted, headers, http, snapshot_of, spiffe};

/// The v1alpha3 example's shape with one HTTPRouteGroup, for the rows of §7.3 and §1.1.
fn one_rule_target(rule: &str, group_matches: &str) -> String {
    format!(
        "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {{name: routes, namespace: shop}}\n\
         spec: {{matches: {group_matches}}}\n---\n\
         apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {{name: t, namespace: shop}}\n\
         spec:\n  destination: {{kind: ServiceAccount, name: api}}\n  sources: [{{kind: ServiceAccount, name: web}}]\n  rules: [{rule}]\n"
    )
}

const TWO_MATCHES: &str = "[{name: books, pathRegex: /books, methods: [GET]}, {name: buy, pathRegex: /buy, methods: [POST]}]";

#[test]
fn an_omitted_matches_list_grants_every_match_of_the_group() {
    let all = snapshot_of(
        &one_rule_target("{kind: HTTPRouteGroup, name: routes}", TWO_MATCHES),
        Options::default(),
    );
    let one = snapshot_of(
        &one_rule_target(
            "{kind: HTTPRouteGroup, name: routes, matches: [buy]}",
            TWO_MATCHES,
        ),
        Options::default(),
    );
    let (api, web) = (spiffe("shop", "api"), spiffe("shop", "web"));
    let h = headers(&[]);
    let g = |m: &str| granted("t", 0, RouteKind::Http, "routes", Some(m));
    let no_rule = Decision::Denied(Denied::NoRuleMatched { targets: 1 });
    let cases = [
        ("GET", "/books", g("books"), no_rule.clone()),
        ("POST", "/buy", g("buy"), g("buy")),
        ("POST", "/books", no_rule.clone(), no_rule.clone()),
        ("GET", "/other", no_rule.clone(), no_rule),
    ];
    for (method, path, with_all, with_one) in cases {
        let request = http(Some(80), method, path, &h);
        assert_eq!(
            decide(&all, &api, &web, &request),
            with_all,
            "omitted matches: {method} {path}"
        );
        assert_eq!(
            decide(&one, &api, &web, &request),
            with_one,
            "matches [buy]: {method} {path}"
        );
    }
}

#[test]
fn subject_namespaces_default_to_the_targets_namespace() {
    let snapshot = snapshot_of(
        &one_rule_target("{kind: HTTPRouteGroup, name: routes}", TWO_MATCHES),
        Options::default(),
    );
    let policy = snapshot.policy();
    assert_eq!(
        (
            policy.targets[0].destination.namespace.as_str(),
            policy.targets[0].sources[0].namespace.as_str()
        ),
        ("shop", "shop")
    );
    let h = headers(&[]);
    let request = http(Some(80), "GET", "/books", &h);
    let cases = [
        (
            "shop",
            "api",
            "shop",
            "web",
            granted("t", 0, RouteKind::Http, "routes", Some("books")),
        ),
        (
            "shop",
            "api",
            "default",
            "web",
            Decision::Denied(Denied::SourceNotAllowed),
        ),
        (
            "default",
            "api",
            "shop",
            "web",
            Decision::Denied(Denied::NoTargetsForDestination),
        ),
    ];
    for (dns, dsa, sns, ssa, expected) in cases {
        assert_eq!(
            decide(&snapshot, &spiffe(dns, dsa), &spiffe(sns, ssa), &request),
            expected,
            "{sns}/{ssa} -> {dns}/{dsa}"
        );
    }
}

#[test]
fn path_regex_is_a_prefix_by_default_and_whole_path_in_full_mode() {
    let yaml = one_rule_target(
        "{kind: HTTPRouteGroup, name: routes}",
        "[{name: api, pathRegex: /api}]",
    );
    let (api, web) = (spiffe("shop", "api"), spiffe("shop", "web"));
    let h = headers(&[]);
    let ok = granted("t", 0, RouteKind::Http, "routes", Some("api"));
    let no = Decision::Denied(Denied::NoRuleMatched { targets: 1 });
    let cases = [
        ("/api", ok.clone(), ok.clone()),
        ("/api/v1", ok.clone(), no.clone()),
        ("/api?page=2", ok.clone(), ok),
        ("/v1/api", no.clone(), no),
    ];
    for mode in [PathMatch::Prefix, PathMatch::Full] {
        let snapshot = snapshot_of(&yaml, Options::default().path_match(mode));
        for (path, prefix, full) in &cases {
            let expected = if mode == PathMatch::Prefix {
                prefix
            } else {
                full
            };
            assert_eq!(
                &decide(&snapshot, &api, &web, &http(Some(80), "GET", path, &h)),
                expected,
                "{mode:?} {path}"
            );
        }
    }
}

#[test]
fn absent_path_and_methods_match_any_path_and_method_with_the_headers_anded() {
    let group = r#"[{name: android, headers: {user-agent: ".*Android.*", x-tier: "gold|silver"}}]"#;
    let snapshot = snapshot_of(
        &one_rule_target("{kind: HTTPRouteGroup, name: routes}", group),
        Options::default(),
    );
    let (api, web) = (spiffe("shop", "api"), spiffe("shop", "web"));
    let ok = granted("t", 0, RouteKind::Http, "routes", Some("android"));
    let no = Decision::Denied(Denied::NoRuleMatched { targets: 1 });
    let cases = [
        (
            vec![("User-Agent", "Mozilla Android 14"), ("X-Tier", "gold")],
            "DELETE",
            ok.clone(),
        ),
        (
            vec![("user-agent", "Android"), ("x-tier", "silver")],
            "PROPFIND",
            ok,
        ),
        // Values full-match: "golden" is not "gold".
        (
            vec![("user-agent", "Android"), ("x-tier", "golden")],
            "GET",
            no.clone(),
        ),
        (vec![("user-agent", "Android")], "GET", no.clone()),
        (
            vec![("user-agent", "iPhone"), ("x-tier", "gold")],
            "GET",
            no,
        ),
    ];
    for (pairs, method, expected) in cases {
        let h = headers(&pairs);
        assert_eq!(
            decide(
                &snapshot,
                &api,
                &web,
                &http(Some(80), method, "/any/path", &h)
            ),
            expected,
            "{pairs:?}"
        );
    }
}

#[test]
fn unknown_fields_are_ignored_as_crd_pruning_would() {
    let yaml = r#"
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: t, namespace: shop, labels: {a: b}}
status: {x: 1}
spec:
  extra: [1, 2]
  destination: {kind: ServiceAccount, name: api, colour: blue}
  sources: [{kind: ServiceAccount, name: web}]
  rules: [{kind: TCPRoute, name: r, weight: 3}]
"#;
    let loaded = smi_tests::load_valid("extra.yaml", yaml);
    assert!(
        loaded.diagnostics.is_empty(),
        "{}",
        smi_tests::show(&loaded)
    );
    assert_eq!(loaded.policy.targets[0].rules[0].name, "r");
}

#[test]
fn header_filters_read_the_same_as_a_map_or_a_list_of_single_entry_maps() {
    // §2.2: the docs write a map, the SDK and CRD a list of single-key maps; both are accepted.
    let rule = "{kind: HTTPRouteGroup, name: routes}";
    let map = r#"[{name: iphone, pathRegex: "/api/.*", methods: [GET, HEAD], headers: {user-agent: ".*iPhone.*", X-Beta: "1"}}]"#;
    let list = r#"[{name: iphone, pathRegex: "/api/.*", methods: [GET, HEAD], headers: [{user-agent: ".*iPhone.*"}, {X-Beta: "1"}]}]"#;
    let (map, list) = (
        snapshot_of(&one_rule_target(rule, map), Options::default()),
        snapshot_of(&one_rule_target(rule, list), Options::default()),
    );
    let headers_of = |s: &smi_core::Snapshot| {
        let mut h = s.policy().route_groups[0].matches[0].headers.clone();
        h.sort();
        h
    };
    let expected = vec![
        ("user-agent".to_owned(), ".*iPhone.*".to_owned()),
        ("x-beta".to_owned(), "1".to_owned()),
    ];
    assert_eq!(
        (headers_of(&map), headers_of(&list)),
        (expected.clone(), expected)
    );
    let (api, web) = (spiffe("shop", "api"), spiffe("shop", "web"));
    let ok = granted("t", 0, RouteKind::Http, "routes", Some("iphone"));
    let no = Decision::Denied(Denied::NoRuleMatched { targets: 1 });
    let cases = [
        (
            "HEAD",
            vec![("User-Agent", "Mozilla (iPhone)"), ("x-beta", "1")],
            ok,
        ),
        ("GET", vec![("user-agent", "Mozilla (iPhone)")], no.clone()),
        (
            "GET",
            vec![("user-agent", "Android"), ("x-beta", "1")],
            no.clone(),
        ),
        ("POST", vec![("user-agent", "iPhone"), ("x-beta", "1")], no),
    ];
    for (method, pairs, expected) in cases {
        let h = headers(&pairs);
        let request = http(Some(80), method, "/api/v1", &h);
        assert_eq!(
            decide(&map, &api, &web, &request),
            expected,
            "map: {method} {pairs:?}"
        );
        assert_eq!(
            decide(&list, &api, &web, &request),
            expected,
            "list: {method} {pairs:?}"
        );
    }
}
