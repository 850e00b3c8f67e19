//! The parse cases of CONFORMANCE.md §4 put to use: read as JSON, and combined into a policy
//! whose decisions follow from the values parsed.

use smi_core::model::{Backend, RouteKind};
use smi_core::policy::{Denied, Miss};
use smi_core::{Format, Options, load_str};
use smi_tests::{Decision, decide, granted, headers, http, load_data, spiffe};

fn backends(pairs: &[(&str, u64)]) -> Vec<Backend> {
    pairs
        .iter()
        .map(|(s, w)| Backend {
            service: s.to_string(),
            weight: *w,
        })
        .collect()
}

#[test]
fn parse_case_v1alpha1_quantity_weights_keep_their_ratio_in_json_too() {
    // P-TS-1 as the JSON an API server would return.
    let json = r#"{"apiVersion": "split.smi-spec.io/v1alpha1", "kind": "TrafficSplit",
        "metadata": {"name": "trafficsplit-sample"},
        "spec": {"service": "foo", "backends": [{"service": "bar", "weight": "50m"}, {"service": "baz", "weight": "50m"}]}}"#;
    let loaded = load_str("p-ts-1.json", json, Format::Json);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let yaml = load_data("parse/p-ts-1.yaml").policy;
    let (j, y) = (&loaded.policy.splits[0], &yaml.splits[0]);
    assert_eq!(
        (&j.meta.name, &j.service, &j.backends),
        (&y.meta.name, &y.service, &y.backends)
    );
    assert_eq!(j.backends, backends(&[("bar", 50), ("baz", 50)]));
}

#[test]
fn parse_cases_combine_into_a_working_policy() {
    // P-TT-1 names TCPRoute `the-routes` (P-TCP-4: 3306, 6446) and HTTPRouteGroup `the-routes`
    // (P-HRG-4: `metrics` needs header x-debug: 1).
    let mut yaml = String::new();
    for file in ["p-tt-1.yaml", "p-tcp-4.yaml", "p-hrg-4.yaml"] {
        yaml.push_str(&smi_tests::data_text(&format!("parse/{file}")));
        yaml.push_str("\n---\n");
    }
    let snapshot = smi_tests::snapshot_of(&yaml, Options::default());
    assert!(snapshot.warnings().is_empty(), "{:?}", snapshot.warnings());
    let (to, from) = (
        spiffe("default", "service-a"),
        spiffe("default", "prometheus"),
    );
    let debug = headers(&[("X-Debug", "1")]);
    let plain = headers(&[]);
    let no_rule = Decision::Denied(Denied::NoRuleMatched { targets: 1 });
    let cases = [
        (
            3306,
            "GET",
            "/metrics",
            &debug,
            granted(
                "path-specific",
                1,
                RouteKind::Http,
                "the-routes",
                Some("metrics"),
            ),
        ),
        (
            6446,
            "GET",
            "/metrics/x",
            &debug,
            granted(
                "path-specific",
                1,
                RouteKind::Http,
                "the-routes",
                Some("metrics"),
            ),
        ),
        (3306, "GET", "/metrics", &plain, no_rule.clone()),
        (3306, "POST", "/metrics", &debug, no_rule.clone()),
        // `health` is in the group but the rule selects only `metrics`.
        (3306, "GET", "/ping", &plain, no_rule.clone()),
        (8080, "GET", "/metrics", &debug, no_rule),
    ];
    for (port, method, path, h, expected) in cases {
        assert_eq!(
            decide(&snapshot, &to, &from, &http(Some(port), method, path, h)),
            expected,
            "{method} {path} :{port}"
        );
    }
    let explained = snapshot.explain(
        &to,
        Some(&from),
        &http(Some(8080), "GET", "/metrics", &debug),
    );
    assert_eq!(
        explained.misses.iter().map(|(_, m)| *m).collect::<Vec<_>>(),
        vec![Miss::PortNotInL4Rules]
    );
}
