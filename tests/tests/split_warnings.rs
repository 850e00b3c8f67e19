//! TrafficSplits that load (no error) but carry warnings, and where their requests then go.

use smi_core::policy::{HttpRequest, Route, ServiceName};
use smi_tests::{count_picks, headers, warned};

fn split(name: &str, backends: &str, extra: &str) -> String {
    format!(
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {{name: {name}, namespace: shop}}\n\
         spec: {{service: web, backends: {backends}{extra}}}\n"
    )
}

const WEB_ROOT: ServiceName<'static> = ServiceName {
    namespace: "shop",
    name: "web",
};

#[test]
fn a_split_whose_weights_are_all_zero_routes_to_the_root() {
    let snapshot = warned(
        &[&split(
            "s",
            "[{service: a, weight: 0}, {service: b, weight: 0}]",
            "",
        )],
        &[],
        &[
            "w.yaml:doc 1: TrafficSplit shop/s: spec.backends: no backend has a weight above 0; requests go to the root service itself",
        ],
    );
    let route = snapshot.route(WEB_ROOT, None);
    assert!(
        matches!(route, Route::NoWeight(s) if s.meta().name == "s"),
        "{route:?}"
    );
    let counts = count_picks(&snapshot, WEB_ROOT, None, 20, 1);
    assert_eq!(counts, [("web".to_owned(), 20)].into());
}

#[test]
fn two_splits_for_one_root_deterministically_pick_the_smallest_name() {
    let alpha = split("alpha", "[{service: a, weight: 1}]", "");
    let beta = split("beta", "[{service: b, weight: 1}]", "");
    let cases = [
        ([&beta, &alpha], "w.yaml:doc 1"),
        ([&alpha, &beta], "w.yaml:doc 2"),
    ];
    for (docs, beta_at) in cases {
        let docs: Vec<&str> = docs.iter().map(|d| d.as_str()).collect();
        let snapshot = warned(
            &docs,
            &[],
            &[&format!(
                "{beta_at}: TrafficSplit shop/beta: spec.service: TrafficSplit shop/alpha also splits web; \
                 only one split per root service applies, and it is alpha (smallest name)"
            )],
        );
        let Route::Split(chosen) = snapshot.route(WEB_ROOT, None) else {
            panic!("expected a split")
        };
        assert_eq!(chosen.meta().name, "alpha");
        assert_eq!(
            count_picks(&snapshot, WEB_ROOT, None, 20, 1),
            [("a".to_owned(), 20)].into()
        );
    }
}

#[test]
fn a_split_matching_a_missing_group_matches_no_request() {
    let snapshot = warned(
        &[&split(
            "s",
            "[{service: a, weight: 1}]",
            ", matches: [{kind: HTTPRouteGroup, name: nope}]",
        )],
        &[],
        &[
            "w.yaml:doc 1: TrafficSplit shop/s: spec.matches[0].name: HTTPRouteGroup shop/nope does not exist; it matches no request",
        ],
    );
    let h = headers(&[]);
    let request = HttpRequest::new("GET", "/", &h);
    assert!(matches!(
        snapshot.route(WEB_ROOT, Some(&request)),
        Route::Unmatched(_)
    ));
    assert!(matches!(
        snapshot.route(WEB_ROOT, None),
        Route::Unmatched(_)
    ));
}

#[test]
fn split_matches_before_v1alpha3_are_ignored_so_every_request_is_split() {
    let doc = split(
        "s",
        "[{service: a, weight: 1}]",
        ", matches: [{kind: HTTPRouteGroup, name: nope}]",
    )
    .replace("v1alpha4", "v1alpha2");
    let snapshot = warned(
        &[&doc],
        &[
            "w.yaml:doc 1: TrafficSplit shop/s: spec.matches: matches are a split v1alpha3 field; ignored in split.smi-spec.io/v1alpha2",
        ],
        &[],
    );
    assert!(matches!(snapshot.route(WEB_ROOT, None), Route::Split(_)));
}
