//! Documents the loader must refuse, each with one precise diagnostic of the form
//! `path:doc N: Kind namespace/name: field: message`, and nothing of the refused resource loaded.

use smi_core::{Format, Loader, Severity, load_str};

const TARGET_HEAD: &str = "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: t, namespace: shop}\n";
const SUPPORTED_ACCESS: &str = "supported: access.smi-spec.io/v1alpha1, access.smi-spec.io/v1alpha2, access.smi-spec.io/v1alpha3";

fn group(matches: &str) -> String {
    format!(
        "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {{name: g, namespace: shop}}\nspec: {{matches: {matches}}}\n"
    )
}

fn target(spec: &str) -> String {
    format!("{TARGET_HEAD}spec: {spec}\n")
}

fn split(version: &str, spec: &str) -> String {
    format!(
        "apiVersion: split.smi-spec.io/{version}\nkind: TrafficSplit\nmetadata: {{name: s, namespace: shop}}\nspec: {spec}\n"
    )
}

const DEST: &str = "destination: {kind: ServiceAccount, name: api}";
const SOURCES: &str = "sources: [{kind: ServiceAccount, name: web}]";
const RULES: &str = "rules: [{kind: TCPRoute, name: r}]";

/// `(case, document, the whole Display of the one error)`.
fn cases() -> Vec<(&'static str, String, String)> {
    let methods =
        "expected * or one of GET, HEAD, PUT, POST, DELETE, CONNECT, OPTIONS, TRACE, PATCH";
    vec![
        (
            "invalid regex in pathRegex",
            group(r#"[{name: m, pathRegex: "/api/(v1"}]"#),
            r#"bad.yaml:doc 1: HTTPRouteGroup shop/g: spec.matches[0].pathRegex: invalid regex "/api/(v1": error: unclosed group"#.into(),
        ),
        (
            "invalid regex in a header value (map form)",
            group(r#"[{name: m, headers: {user-agent: "*Android*"}}]"#),
            r#"bad.yaml:doc 1: HTTPRouteGroup shop/g: spec.matches[0].headers.user-agent: invalid regex "*Android*": error: repetition operator missing expression"#.into(),
        ),
        (
            "invalid regex in a header value (list form, the suite's removed header step)",
            "apiVersion: specs.smi-spec.io/v1alpha2\nkind: HTTPRouteGroup\nmetadata: {name: g, namespace: shop}\nmatches:\n- name: m\n  headers: [{head: \"*tail*\"}]\n".into(),
            r#"bad.yaml:doc 1: HTTPRouteGroup shop/g: matches[0].headers[0].head: invalid regex "*tail*": error: repetition operator missing expression"#.into(),
        ),
        (
            "a header list item with two names",
            group(r#"[{name: m, headers: [{a: x, b: y}]}]"#),
            "bad.yaml:doc 1: HTTPRouteGroup shop/g: spec.matches[0].headers[0]: each list item must be a map with exactly one header name".into(),
        ),
        (
            "unknown method",
            group("[{name: m, methods: [GET, FETCH]}]"),
            format!(r#"bad.yaml:doc 1: HTTPRouteGroup shop/g: spec.matches[0].methods[1]: unknown method "FETCH"; {methods}"#),
        ),
        (
            "lower-case method",
            group("[{name: m, methods: [get]}]"),
            format!(r#"bad.yaml:doc 1: HTTPRouteGroup shop/g: spec.matches[0].methods[0]: unknown method "get"; {methods}"#),
        ),
        (
            "negative weight",
            split("v1alpha4", "{service: web, backends: [{service: a, weight: 1}, {service: b, weight: -1}]}"),
            "bad.yaml:doc 1: TrafficSplit shop/s: spec.backends[1].weight: -1 is negative; weights must be >= 0".into(),
        ),
        (
            "negative Quantity weight",
            split("v1alpha1", "{service: web, backends: [{service: a, weight: -500m}]}"),
            r#"bad.yaml:doc 1: TrafficSplit shop/s: spec.backends[0].weight: "-500m" is negative; weights must be >= 0"#.into(),
        ),
        (
            "Quantity weight after v1alpha1",
            split("v1alpha4", "{service: web, backends: [{service: a, weight: 500m}]}"),
            r#"bad.yaml:doc 1: TrafficSplit shop/s: spec.backends[0].weight: "500m" is not a number (Quantity strings such as "500m" are split v1alpha1 only)"#.into(),
        ),
        (
            "fractional weight",
            split("v1alpha4", "{service: web, backends: [{service: a, weight: 1.5}]}"),
            "bad.yaml:doc 1: TrafficSplit shop/s: spec.backends[0].weight: 1.5 is not a whole number".into(),
        ),
        (
            "unknown apiVersion of the access group",
            TARGET_HEAD.replace("v1alpha3", "v1beta9") + &format!("spec: {{{DEST}, {SOURCES}, {RULES}}}\n"),
            format!(r#"bad.yaml:doc 1: TrafficTarget shop/t: apiVersion: unsupported version "access.smi-spec.io/v1beta9" for TrafficTarget; {SUPPORTED_ACCESS}"#),
        ),
        (
            "the unreleased access v1alpha4",
            TARGET_HEAD.replace("v1alpha3", "v1alpha4") + &format!("spec: {{{DEST}, {SOURCES}, {RULES}}}\n"),
            format!(r#"bad.yaml:doc 1: TrafficTarget shop/t: apiVersion: unsupported version "access.smi-spec.io/v1alpha4" for TrafficTarget; {SUPPORTED_ACCESS}"#),
        ),
        (
            "UDPRoute before specs v1alpha4",
            "apiVersion: specs.smi-spec.io/v1alpha3\nkind: UDPRoute\nmetadata: {name: u, namespace: shop}\n".into(),
            r#"bad.yaml:doc 1: UDPRoute shop/u: apiVersion: unsupported version "specs.smi-spec.io/v1alpha3" for UDPRoute; supported: specs.smi-spec.io/v1alpha4"#.into(),
        ),
        (
            "unknown kind in an SMI group",
            TARGET_HEAD.replace("kind: TrafficTarget", "kind: TrafficPolicy"),
            r#"bad.yaml:doc 1: TrafficPolicy shop/t: kind: unknown kind "TrafficPolicy" for access.smi-spec.io"#.into(),
        ),
        (
            "a kind of another SMI group",
            TARGET_HEAD.replace("kind: TrafficTarget", "kind: TrafficSplit"),
            r#"bad.yaml:doc 1: TrafficSplit shop/t: kind: unknown kind "TrafficSplit" for access.smi-spec.io"#.into(),
        ),
        (
            "v1alpha3 TrafficTarget without destination",
            target(&format!("{{{SOURCES}, {RULES}}}")),
            "bad.yaml:doc 1: TrafficTarget shop/t: spec.destination: missing".into(),
        ),
        (
            "v1alpha3 TrafficTarget without sources",
            target(&format!("{{{DEST}, {RULES}}}")),
            "bad.yaml:doc 1: TrafficTarget shop/t: spec.sources: at least one source is required in v1alpha3".into(),
        ),
        (
            "v1alpha3 TrafficTarget with an empty source list",
            target(&format!("{{{DEST}, sources: [], {RULES}}}")),
            "bad.yaml:doc 1: TrafficTarget shop/t: spec.sources: at least one source is required in v1alpha3".into(),
        ),
        (
            "v1alpha3 TrafficTarget without rules",
            target(&format!("{{{DEST}, {SOURCES}}}")),
            "bad.yaml:doc 1: TrafficTarget shop/t: spec.rules: at least one rule is required in v1alpha3".into(),
        ),
        (
            "a destination in another namespace",
            target(&format!("{{destination: {{kind: ServiceAccount, name: api, namespace: bank}}, {SOURCES}, {RULES}}}")),
            r#"bad.yaml:doc 1: TrafficTarget shop/t: spec.destination.namespace: "bank" differs from the TrafficTarget's namespace "shop"; a TrafficTarget can only grant access to its own namespace"#.into(),
        ),
        (
            "a subject kind SMI does not define",
            target(&format!("{{{DEST}, sources: [{{kind: Group, name: admins}}], {RULES}}}")),
            r#"bad.yaml:doc 1: TrafficTarget shop/t: spec.sources[0].kind: unsupported subject kind "Group"; only ServiceAccount is defined by SMI"#.into(),
        ),
        (
            "an unknown rule kind",
            target(&format!("{{{DEST}, {SOURCES}, rules: [{{kind: GRPCRoute, name: r}}]}}")),
            r#"bad.yaml:doc 1: TrafficTarget shop/t: spec.rules[0].kind: unknown rule kind "GRPCRoute"; expected HTTPRouteGroup, TCPRoute or UDPRoute"#.into(),
        ),
        (
            "a v1alpha2 destination port out of range",
            target(&format!("{{destination: {{kind: ServiceAccount, name: api, port: 70000}}, {SOURCES}, {RULES}}}")).replace("v1alpha3", "v1alpha2"),
            "bad.yaml:doc 1: TrafficTarget shop/t: spec.destination.port: 70000 is not a port (1-65535)".into(),
        ),
        (
            "a TCPRoute port that is not a port",
            "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {name: r, namespace: shop}\nspec: {matches: {ports: [80, 0]}}\n".into(),
            "bad.yaml:doc 1: TCPRoute shop/r: spec.matches.ports[1]: 0 is not a port (1-65535)".into(),
        ),
        (
            "a split root in another namespace",
            split("v1alpha4", "{service: web.bank.svc.cluster.local, backends: [{service: a, weight: 1}]}"),
            r#"bad.yaml:doc 1: TrafficSplit shop/s: spec.service: "web.bank.svc.cluster.local" is in namespace "bank", but a TrafficSplit's root service must be in its own namespace "shop""#.into(),
        ),
        (
            "a resource without a name",
            "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {namespace: shop}\n".into(),
            "bad.yaml:doc 1: TCPRoute: metadata.name: missing".into(),
        ),
        (
            "a type error names its field path",
            target(&format!("{{{DEST}, sources: {{kind: ServiceAccount}}, {RULES}}}")),
            "bad.yaml:doc 1: TrafficTarget shop/t: spec.sources: invalid type: map, expected a sequence".into(),
        ),
    ]
}

#[test]
fn each_invalid_document_gives_one_precise_error_and_loads_nothing() {
    for (case, yaml, expected) in cases() {
        let loaded = load_str("bad.yaml", &yaml, Format::Yaml);
        let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
        assert_eq!(errors, vec![expected], "{case}:\n{yaml}");
        assert!(!loaded.is_valid(), "{case}");
        assert!(loaded.policy.is_empty(), "{case}: {:?}", loaded.policy);
        assert_eq!(loaded.skipped, 0, "{case}");
    }
}

#[test]
fn an_invalid_document_does_not_stop_the_valid_ones_after_it() {
    let (_, bad, _) = cases().swap_remove(0);
    let good = group("[{name: ok, pathRegex: /ok}]").replace("name: g,", "name: good,");
    let loaded = load_str("mixed.yaml", &format!("{bad}---\n{good}"), Format::Yaml);
    assert_eq!(loaded.errors().count(), 1);
    assert!(loaded.errors().all(|d| {
        d.to_string()
            .starts_with("mixed.yaml:doc 1: HTTPRouteGroup shop/g: ")
    }));
    assert_eq!(loaded.policy.route_groups.len(), 1);
    assert_eq!(loaded.policy.route_groups[0].meta.name, "good");
    assert_eq!(loaded.policy.route_groups[0].meta.origin.document, 2);
}

#[test]
fn malformed_yaml_is_reported_at_its_document_and_stops_that_file_only() {
    let good = group("[{name: ok}]");
    let broken = "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: [unclosed\n";
    let mut loader = Loader::new();
    loader.add_text("broken.yaml", &format!("{good}---\n{broken}"), Format::Yaml);
    loader.add_text(
        "other.yaml",
        &good.replace("name: g,", "name: h,"),
        Format::Yaml,
    );
    let loaded = loader.finish();
    let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("broken.yaml:doc 2: malformed YAML: "),
        "{}",
        errors[0]
    );
    let names: Vec<&str> = loaded
        .policy
        .route_groups
        .iter()
        .map(|g| g.meta.name.as_str())
        .collect();
    assert_eq!(names, ["g", "h"]);
}

#[test]
fn malformed_json_and_non_objects_are_errors_without_a_resource() {
    let cases = [
        (
            "p.json",
            "{\"apiVersion\": ",
            Format::Json,
            "p.json:doc 1: malformed JSON: ",
        ),
        (
            "p.yaml",
            "- just\n- a list\n",
            Format::Yaml,
            "p.yaml:doc 1: document is not a mapping (a Kubernetes object)",
        ),
        (
            "p.yaml",
            "metadata: {name: x}\n",
            Format::Yaml,
            "p.yaml:doc 1: apiVersion: not a Kubernetes object: no apiVersion or kind",
        ),
    ];
    for (source, text, format, prefix) in cases {
        let loaded = load_str(source, text, format);
        let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 1, "{text:?}: {errors:?}");
        assert!(errors[0].starts_with(prefix), "{text:?}: {}", errors[0]);
        assert!(
            loaded
                .diagnostics
                .iter()
                .all(|d| d.severity == Severity::Error)
        );
    }
}
