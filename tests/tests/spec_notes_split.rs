//! The TrafficSplit examples of SPEC-NOTES.md §4 and its split rows of §7.3: relative weights,
//! v1alpha1 Quantities, weight 0, the canary and the A/B test with `matches`.

use smi_core::Options;
use smi_core::model::Backend;
use smi_core::policy::{HttpRequest, Route, ServiceName};
use smi_tests::{count, count_picks, headers, snapshot_of};

/// `(backend, weight as written)` pairs.
type Weights<'a> = &'a [(&'a str, &'a str)];

const WEBSITE: ServiceName<'static> = ServiceName {
    namespace: "default",
    name: "website",
};

fn split_yaml(version: &str, weights: Weights<'_>) -> String {
    let mut yaml = format!(
        "apiVersion: split.smi-spec.io/{version}\nkind: TrafficSplit\nmetadata: {{name: canary, namespace: default}}\n\
         spec:\n  service: website\n  backends:\n"
    );
    for (service, weight) in weights {
        yaml.push_str(&format!("  - {{service: {service}, weight: {weight}}}\n"));
    }
    yaml
}

fn weights_of(yaml: &str) -> Vec<u64> {
    let snapshot = snapshot_of(yaml, Options::default());
    let Some(split) = snapshot.route(WEBSITE, None).split() else {
        panic!("website is not split by\n{yaml}")
    };
    split
        .backends()
        .iter()
        .map(|b: &Backend| b.weight)
        .collect()
}

#[test]
fn weights_are_relative_whatever_their_scale() {
    // §4.1's examples: (weights, share of each backend).
    let cases: [(Weights<'_>, &[f64]); 5] = [
        (&[("v1", "90"), ("v2", "10")], &[0.9, 0.1]),
        (&[("v1", "1000"), ("v2", "500")], &[2.0 / 3.0, 1.0 / 3.0]),
        (&[("v1", "1")], &[1.0]),
        (&[("v1", "100"), ("v2", "900")], &[0.1, 0.9]),
        (&[("v1", "1"), ("v2", "9")], &[0.1, 0.9]),
    ];
    for (weights, shares) in cases {
        let snapshot = snapshot_of(&split_yaml("v1alpha4", weights), Options::default());
        let Route::Split(split) = snapshot.route(WEBSITE, None) else {
            panic!("{weights:?}: expected a split")
        };
        for (i, share) in shares.iter().enumerate() {
            assert!(
                (split.probability(i) - share).abs() < 1e-12,
                "{weights:?} backend {i}"
            );
        }
    }
}

#[test]
fn v1alpha1_quantities_are_milli_units_so_one_and_500m_are_two_to_one() {
    // §6.5: the SDK's conversion got this backwards (1:500); milli-units keep 1000:500.
    let cases: [(Weights<'_>, &[u64]); 4] = [
        (&[("v1", "1"), ("v2", "500m")], &[1000, 500]),
        (&[("v1", "\"1\""), ("v2", "\"500m\"")], &[1000, 500]),
        (
            &[("v1", "10m"), ("v2", "100m"), ("v3", "1500m")],
            &[10, 100, 1500],
        ),
        (&[("v1", "100m"), ("v2", "900m")], &[100, 900]),
    ];
    for (weights, milli) in cases {
        assert_eq!(
            weights_of(&split_yaml("v1alpha1", weights)),
            milli,
            "{weights:?}"
        );
    }
    let snapshot = snapshot_of(
        &split_yaml("v1alpha1", &[("v1", "1"), ("v2", "500m")]),
        Options::default(),
    );
    let counts = count_picks(&snapshot, WEBSITE, None, 3000, 11);
    let share = count(&counts, "v1") as f64 / 3000.0;
    assert!((share - 2.0 / 3.0).abs() <= 0.05, "v1 share {share:.3}");
}

#[test]
fn the_canary_sends_about_ninety_percent_to_v1() {
    let yaml = split_yaml("v1alpha4", &[("website-v1", "90"), ("website-v2", "10")]);
    let snapshot = snapshot_of(&yaml, Options::default());
    let counts = count_picks(&snapshot, WEBSITE, None, 1000, 3);
    let (v1, v2) = (count(&counts, "website-v1"), count(&counts, "website-v2"));
    assert_eq!((v1 + v2, count(&counts, "website")), (1000, 0));
    assert!((v1 as f64 / 1000.0 - 0.9).abs() <= 0.05, "v1 {v1}, v2 {v2}");
}

#[test]
fn a_backend_at_weight_zero_receives_nothing() {
    // The rollout workflow: v2 exists in the split at weight 0 before it takes traffic.
    for weights in [
        &[("website-v1", "100"), ("website-v2", "0")][..],
        &[("website-v2", "0"), ("website-v1", "1")],
    ] {
        let snapshot = snapshot_of(&split_yaml("v1alpha4", weights), Options::default());
        for seed in 0..10 {
            let counts = count_picks(&snapshot, WEBSITE, None, 500, seed);
            assert_eq!(count(&counts, "website-v1"), 500, "{weights:?} seed {seed}");
            assert_eq!(count(&counts, "website-v2"), 0, "{weights:?} seed {seed}");
        }
    }
}

#[test]
fn all_zero_weights_and_empty_backends_route_to_the_root_service_with_a_warning() {
    // §7.3: the choice made is "send to the root service" (OSM builds a broken route instead).
    for yaml in [
        split_yaml("v1alpha4", &[("website-v1", "0"), ("website-v2", "0")]),
        split_yaml("v1alpha4", &[]).replace("  backends:\n", "  backends: []\n"),
    ] {
        let snapshot = snapshot_of(&yaml, Options::default());
        let Route::NoWeight(split) = snapshot.route(WEBSITE, None) else {
            panic!("expected NoWeight for\n{yaml}")
        };
        assert_eq!(split.meta().name, "canary");
        let warnings: Vec<String> = snapshot
            .warnings()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            warnings,
            vec![
                "policy.yaml:doc 1: TrafficSplit default/canary: spec.backends: no backend has a weight above 0; \
                  requests go to the root service itself"
            ]
        );
        assert_eq!(
            count_picks(&snapshot, WEBSITE, None, 50, 1),
            [("website".to_owned(), 50)].into()
        );
    }
}

/// §4.3: Firefox users go to website-v2; everyone else uses the plain `website` Service.
const AB_TEST: &str = r#"
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: ab-test, namespace: default}
spec:
  service: website
  matches:
  - {kind: HTTPRouteGroup, name: ab-test}
  backends:
  - {service: website-v1, weight: 0}
  - {service: website-v2, weight: 100}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: ab-test, namespace: default}
matches:
- name: firefox-users
  headers:
  - user-agent: ".*Firefox.*"
"#;

#[test]
fn the_ab_test_sends_firefox_users_to_v2_and_everyone_else_to_the_root() {
    let snapshot = snapshot_of(AB_TEST, Options::default());
    assert!(snapshot.warnings().is_empty(), "{:?}", snapshot.warnings());
    let cases = [
        (
            vec![(
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
            )],
            "website-v2",
        ),
        (vec![("User-Agent", "Firefox")], "website-v2"),
        (
            vec![("user-agent", "Mozilla/5.0 Chrome/120.0 Safari/537.36")],
            "website",
        ),
        (vec![], "website"),
    ];
    for (pairs, expected) in cases {
        let h = headers(&pairs);
        let request = HttpRequest::new("GET", "/", &h);
        let route = snapshot.route(WEBSITE, Some(&request));
        let want_split = expected != "website";
        assert_eq!(
            matches!(route, Route::Split(_)),
            want_split,
            "{pairs:?}: {route:?}"
        );
        assert_eq!(
            matches!(route, Route::Unmatched(_)),
            !want_split,
            "{pairs:?}: {route:?}"
        );
        let counts = count_picks(&snapshot, WEBSITE, Some(&request), 100, 5);
        assert_eq!(counts, [(expected.to_owned(), 100)].into(), "{pairs:?}");
    }
    // Raw TCP carries no headers: a split with matches does not apply to it.
    assert!(matches!(snapshot.route(WEBSITE, None), Route::Unmatched(_)));
}

#[test]
fn several_match_groups_of_one_split_are_ored() {
    let yaml = AB_TEST.replace(
        "  - {kind: HTTPRouteGroup, name: ab-test}\n",
        "  - {kind: HTTPRouteGroup, name: ab-test}\n  - {kind: HTTPRouteGroup, name: beta}\n",
    ) + "---\napiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: beta}\n\
         spec: {matches: [{name: beta-path, pathRegex: /beta}]}\n";
    let snapshot = snapshot_of(&yaml, Options::default());
    let cases = [
        ("/beta/home", vec![], true),
        ("/", vec![("user-agent", "Firefox")], true),
        ("/home", vec![("user-agent", "curl")], false),
    ];
    for (path, pairs, split) in cases {
        let h = headers(&pairs);
        let request = HttpRequest::new("GET", path, &h);
        let route = snapshot.route(WEBSITE, Some(&request));
        assert_eq!(matches!(route, Route::Split(_)), split, "{path} {pairs:?}");
    }
}

#[test]
fn the_root_service_may_be_written_as_a_name_or_an_fqdn() {
    for service in [
        "website",
        "website.default",
        "website.default.svc.cluster.local",
    ] {
        let yaml = split_yaml("v1alpha4", &[("website-v1", "1")])
            .replace("service: website\n", &format!("service: {service}\n"));
        let snapshot = snapshot_of(&yaml, Options::default());
        assert_eq!(
            snapshot.route(WEBSITE, None).split().map(|s| s.root()),
            Some("website"),
            "{service}"
        );
        for host in [
            "website.default",
            "website.default.svc.cluster.local:80",
            "website.default.svc",
        ] {
            let name = ServiceName::parse(host, None, "cluster.local").expect("a mesh host");
            assert!(
                matches!(snapshot.route(name, None), Route::Split(_)),
                "{service} via {host}"
            );
        }
    }
}
