//! Bugs these tests found in smi-core, one test each (fixed minimally in smi-core; see the
//! report). Each input used to load silently or with an imprecise diagnostic.

use smi_core::policy::{Route, ServiceName};
use smi_core::{Format, Options, Snapshot, load_str};

fn split(version: &str, spec: &str) -> String {
    format!(
        "apiVersion: split.smi-spec.io/{version}\nkind: TrafficSplit\nmetadata: {{name: s, namespace: shop}}\nspec: {spec}\n"
    )
}

/// The one error of loading `yaml`, displayed.
fn only_error(yaml: &str) -> String {
    let loaded = load_str("bad.yaml", yaml, Format::Yaml);
    let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
    let [error] = errors.as_slice() else {
        panic!("expected one error for\n{yaml}\ngot {errors:?}")
    };
    assert!(loaded.policy.is_empty(), "{:?}", loaded.policy);
    error.clone()
}

#[test]
fn split_weights_too_large_to_add_up_are_refused_instead_of_routing_everything_to_the_root() {
    // Was: loaded without a diagnostic; the sampler's sum overflowed, so `route` answered
    // `Route::NoWeight` (documented as "no backend has weight above 0") and sent every request to
    // the root service, with no warning.
    let cases = [
        (
            split(
                "v1alpha4",
                "{service: web, backends: [{service: a, weight: 18446744073709551615}, {service: b, weight: 1}]}",
            ),
            "bad.yaml:doc 1: TrafficSplit shop/s: spec.backends[0].weight: 18446744073709551615 is too large; a weight may be at most 4294967295",
        ),
        (
            split(
                "v1alpha1",
                "{service: web, backends: [{service: a, weight: 10000T}, {service: b, weight: 10000T}]}",
            ),
            r#"bad.yaml:doc 1: TrafficSplit shop/s: spec.backends[0].weight: "10000T" is too large; a weight may be at most 4294967295m"#,
        ),
    ];
    for (yaml, expected) in cases {
        let loaded = load_str("bad.yaml", &yaml, Format::Yaml);
        let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
        assert_eq!(errors.first().map(String::as_str), Some(expected), "{yaml}");
        assert!(loaded.policy.splits.is_empty());
    }
    // The largest weight allowed still splits, whatever the number of backends.
    let max = split(
        "v1alpha4",
        "{service: web, backends: [{service: a, weight: 4294967295}, {service: b, weight: 4294967295}]}",
    );
    let loaded = load_str("ok.yaml", &max, Format::Yaml);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let snapshot = Snapshot::compile(loaded.policy, Options::default());
    let web = ServiceName {
        namespace: "shop",
        name: "web",
    };
    let Route::Split(s) = snapshot.route(web, None) else {
        panic!("expected a split")
    };
    assert!((s.probability(0) - 0.5).abs() < 1e-12);
}

#[test]
fn an_smi_api_version_without_a_version_is_an_error_not_a_skipped_document() {
    // Was: `apiVersion: access.smi-spec.io` (no `/v1alpha3`) was taken for a core-group version,
    // so the TrafficTarget was counted as "not SMI" and skipped without a word.
    let yaml = "apiVersion: access.smi-spec.io\nkind: TrafficTarget\nmetadata: {name: t, namespace: shop}\n";
    assert_eq!(
        only_error(yaml),
        "bad.yaml:doc 1: TrafficTarget shop/t: apiVersion: unsupported version \"access.smi-spec.io\" for TrafficTarget; \
         supported: access.smi-spec.io/v1alpha1, access.smi-spec.io/v1alpha2, access.smi-spec.io/v1alpha3"
    );
    // Core-group objects (`apiVersion: v1`) are still skipped, and `v1` Lists still unwrapped.
    let list = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Service, metadata: {name: s}}\n";
    let loaded = load_str("ok.yaml", list, Format::Yaml);
    assert_eq!((loaded.skipped, loaded.diagnostics.len()), (1, 0));
}

#[test]
fn a_metadata_type_error_names_the_metadata_field() {
    // Was: `TCPRoute: name: invalid type ...`, a path relative to `metadata`.
    let yaml = "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {name: 123, namespace: shop}\n";
    assert_eq!(
        only_error(yaml),
        "bad.yaml:doc 1: TCPRoute: metadata.name: invalid type: integer `123`, expected a string"
    );
}

#[test]
fn a_split_match_kind_is_written_plainly_in_its_diagnostic() {
    // Was: `spec.matches[0].kind: Some("TCPRoute"): ...` and `None: ...` (Rust Debug of an Option).
    let cases = [
        (
            "[{kind: TCPRoute, name: r}]",
            r#"spec.matches[0].kind: "TCPRoute": only HTTPRouteGroup can be matched by a TrafficSplit"#,
        ),
        (
            "[{name: r}]",
            "spec.matches[0].kind: missing (expected HTTPRouteGroup)",
        ),
    ];
    for (matches, expected) in cases {
        let yaml = split(
            "v1alpha4",
            &format!("{{service: web, matches: {matches}, backends: [{{service: a, weight: 1}}]}}"),
        );
        assert_eq!(
            only_error(&yaml),
            format!("bad.yaml:doc 1: TrafficSplit shop/s: {expected}")
        );
    }
}

#[test]
fn a_regex_that_cannot_be_anchored_is_refused_instead_of_matching_nothing() {
    // Was: accepted (the pattern alone is valid), but `^(?:...)` could not be built because the
    // verbose-mode comment runs to the end and swallows the closing parenthesis; the match then
    // silently matched nothing, so a rule meant to allow `/metrics` denied it.
    let group = |matches: &str| {
        format!(
            "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {{name: g, namespace: shop}}\nspec: {{matches: [{matches}]}}\n"
        )
    };
    let cases = [
        (
            r#"{name: m, pathRegex: "(?x)/metrics # metrics only"}"#,
            "spec.matches[0].pathRegex",
            "(?x)/metrics # metrics only",
        ),
        (
            r#"{name: m, headers: {x-env: "(?x)prod # production"}}"#,
            "spec.matches[0].headers.x-env",
            "(?x)prod # production",
        ),
    ];
    for (matches, field, pattern) in cases {
        let error = only_error(&group(matches));
        let prefix = format!(
            "bad.yaml:doc 1: HTTPRouteGroup shop/g: {field}: invalid regex {pattern:?}: cannot be anchored"
        );
        assert!(error.starts_with(&prefix), "{error}");
    }
    // Verbose mode itself stays allowed when it does not end in a comment.
    let ok = group(r#"{name: m, pathRegex: "(?x) /metrics  (/.*)?"}"#);
    let loaded = load_str("ok.yaml", &ok, Format::Yaml);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
}
