//! The SMI conformance suite's traffic-split steps (CONFORMANCE.md §3, TS-1.1.1 to TS-1.2.9), at
//! policy level: 50 sequential `GET http://app-svc.N.svc.cluster.local.:9091/echo` from app-a,
//! each routed and picked with a fixed-seed rng, counted per receiving service.

use std::collections::BTreeMap;

use smi_core::Options;
use smi_core::model::Backend;
use smi_core::policy::{Denied, HttpRequest, Route, ServiceName};
use smi_tests::{
    Cluster, Decision, NAMESPACE, count, count_picks, decide, headers, http, load_data, sa,
};

const DIR: &str = "conformance/traffic-split";
/// The harness's URL host, with its trailing dot before the port.
const APP_SVC: &str = "app-svc.conformance.svc.cluster.local.:9091";
const REQUESTS: usize = 50;
const SEED: u64 = 0x5eed;

fn app_svc() -> ServiceName<'static> {
    let name = ServiceName::parse(APP_SVC, None, "cluster.local")
        .unwrap_or_else(|e| panic!("the harness's host should parse: {e}"));
    assert_eq!((name.namespace, name.name), (NAMESPACE, "app-svc"));
    name
}

fn after_fixture() -> Cluster {
    let mut cluster = Cluster::default();
    let loaded = cluster.apply(&format!("{DIR}/02-install.yaml"));
    assert_eq!(
        (loaded.skipped, loaded.diagnostics.len()),
        (7, 0),
        "3 Deployments, 4 Services"
    );
    assert!(cluster.is_empty());
    cluster
}

/// Applies step `NN-install.yaml`, checks `NN-assert.yaml`, and returns the split's weights.
fn apply_split(cluster: &mut Cluster, step: &str) -> Vec<Backend> {
    let loaded = cluster.apply(&format!("{DIR}/{step}-install.yaml"));
    assert!(
        loaded.diagnostics.is_empty(),
        "{step}: {:?}",
        loaded.diagnostics
    );
    cluster.assert_present(&format!("{DIR}/{step}-assert.yaml"));
    let policy = cluster.policy();
    assert_eq!(
        policy.splits.len(),
        1,
        "{step} updates the one split `server-split`"
    );
    assert_eq!(policy.splits[0].meta.name, "server-split");
    assert_eq!(policy.splits[0].service, "app-svc");
    policy.splits[0].backends.clone()
}

/// The suite's traffic: `n` requests to app-svc, counted per receiving service.
fn traffic(cluster: &Cluster, n: usize, seed: u64) -> BTreeMap<String, usize> {
    let h = headers(&[("ServiceName", "app-a")]);
    let request = HttpRequest::new("GET", "/echo", &h);
    let snapshot = cluster.snapshot(Options::default().permissive(true));
    let counts = count_picks(&snapshot, app_svc(), Some(&request), n, seed);
    assert_eq!(
        counts.values().sum::<usize>(),
        n,
        "every request is delivered exactly once"
    );
    counts
}

fn weights(backends: &[Backend]) -> Vec<(&str, u64)> {
    backends
        .iter()
        .map(|b| (b.service.as_str(), b.weight))
        .collect()
}

#[test]
fn crd_step_registers_traffic_split_and_its_kind_parses() {
    // TS-1.1.1.
    let crd = load_data(&format!("{DIR}/01-assert.yaml"));
    assert_eq!((crd.skipped, crd.diagnostics.len()), (1, 0));
    let text = smi_tests::data_text(&format!("{DIR}/01-assert.yaml"));
    assert!(text.contains("group: split.smi-spec.io") && text.contains("kind: TrafficSplit"));
    let loaded = smi_tests::load_valid(
        "minimal.yaml",
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: s}\nspec: {service: r, backends: [{service: b, weight: 1}]}\n",
    );
    assert_eq!(loaded.policy.splits[0].backends[0].weight, 1);
}

#[test]
fn fixture_and_test_step_files_are_skipped_without_diagnostics() {
    // TS-1.1.2: 3 deployments and 4 services, none of them policy.
    let cases = [
        ("02-install.yaml", 7),
        ("02-assert.yaml", 7),
        ("03-trafficDefault.yaml", 1),
        ("05-trafficOnlyB.yaml", 1),
        ("07-trafficOnlyC.yaml", 1),
        ("09-trafficBGrtC.yaml", 1),
        ("11-trafficCGrtB.yaml", 1),
    ];
    for (file, skipped) in cases {
        let loaded = load_data(&format!("{DIR}/{file}"));
        assert!(
            loaded.diagnostics.is_empty() && loaded.policy.is_empty(),
            "{file}: {:?}",
            loaded.diagnostics
        );
        assert_eq!(loaded.skipped, skipped, "{file}");
    }
}

#[test]
fn split_suite_needs_permissive_mode_because_it_has_no_traffic_targets() {
    // Every fixture pod runs as the namespace's `default` account.
    let cluster = after_fixture();
    let h = headers(&[("ServiceName", "app-a")]);
    let echo = http(Some(9091), "GET", "/echo", &h);
    let default_sa = sa("default");
    let strict = cluster.snapshot(Options::default());
    assert_eq!(
        decide(&strict, &default_sa, &default_sa, &echo),
        Decision::Denied(Denied::NoTargetsForDestination)
    );
    let permissive = cluster.snapshot(Options::default().permissive(true));
    assert_eq!(
        decide(&permissive, &default_sa, &default_sa, &echo),
        Decision::Permissive
    );
    let mut with_split = after_fixture();
    apply_split(&mut with_split, "08");
    let permissive = with_split.snapshot(Options::default().permissive(true));
    assert_eq!(
        decide(&permissive, &default_sa, &default_sa, &echo),
        Decision::Permissive
    );
}

#[test]
fn without_a_split_the_root_service_takes_every_request() {
    // TS-1.2.1 (03-trafficDefault): no split, so app-svc's own endpoints (the b and c pods, as
    // kube-proxy balances them) receive all 50.
    let cluster = after_fixture();
    let snapshot = cluster.snapshot(Options::default().permissive(true));
    let h = headers(&[]);
    let request = HttpRequest::new("GET", "/echo", &h);
    assert!(matches!(
        snapshot.route(app_svc(), Some(&request)),
        Route::Unsplit
    ));
    assert!(matches!(snapshot.route(app_svc(), None), Route::Unsplit));
    let counts = traffic(&cluster, REQUESTS, SEED);
    assert_eq!(count(&counts, "app-svc"), REQUESTS);
}

#[test]
fn weight_steps_send_the_right_share_to_b_and_c() {
    // TS-1.2.2 to TS-1.2.9, in order, each step updating the same split.
    let mut cluster = after_fixture();
    type Check = fn(usize, usize) -> bool;
    let steps: [(&str, u64, u64, Check, &str); 4] = [
        (
            "04",
            1,
            0,
            |b, c| b == 50 && c == 0,
            "TS-1.2.3 b == 50 and c == 0",
        ),
        (
            "06",
            0,
            1,
            |b, c| b == 0 && c == 50,
            "TS-1.2.5 b == 0 and c == 50",
        ),
        ("08", 75, 25, |b, c| b > c, "TS-1.2.7 b > c"),
        ("10", 25, 75, |b, c| b < c, "TS-1.2.9 b < c"),
    ];
    for (step, wb, wc, check, what) in steps {
        let backends = apply_split(&mut cluster, step);
        assert_eq!(
            weights(&backends),
            vec![("app-b", wb), ("app-c", wc)],
            "step {step}"
        );
        let counts = traffic(&cluster, REQUESTS, SEED);
        let (b, c) = (count(&counts, "app-b"), count(&counts, "app-c"));
        assert!(check(b, c), "step {step}: {what}, got b={b} c={c}");
        assert_eq!(
            b + c,
            REQUESTS,
            "step {step}: nothing goes to the root service"
        );
    }
}

#[test]
fn only_b_and_only_c_hold_for_every_seed() {
    // A weight of 0 receives exactly nothing, whatever the rng does.
    for (step, winner) in [("04", "app-b"), ("06", "app-c")] {
        let mut cluster = after_fixture();
        apply_split(&mut cluster, step);
        for seed in 0..20 {
            let counts = traffic(&cluster, REQUESTS, seed);
            assert_eq!(
                counts,
                BTreeMap::from([(winner.to_owned(), REQUESTS)]),
                "step {step} seed {seed}"
            );
        }
    }
}

#[test]
fn unequal_steps_are_within_the_stricter_tolerance() {
    // CONFORMANCE.md's own acceptance: b/(b+c) within ±0.10 of the share over 50 requests and
    // within ±0.05 over 1000.
    for (step, share_b) in [("08", 0.75), ("10", 0.25)] {
        let mut cluster = after_fixture();
        apply_split(&mut cluster, step);
        let snapshot = cluster.snapshot(Options::default().permissive(true));
        let Route::Split(split) = snapshot.route(app_svc(), None) else {
            panic!("step {step}: expected a split route");
        };
        assert!(
            (split.probability(0) - share_b).abs() < 1e-12,
            "step {step}"
        );
        assert!(
            (split.probability(1) - (1.0 - share_b)).abs() < 1e-12,
            "step {step}"
        );
        for (n, tolerance) in [(REQUESTS, 0.10), (1000, 0.05)] {
            let counts = traffic(&cluster, n, SEED);
            let (b, c) = (count(&counts, "app-b"), count(&counts, "app-c"));
            let seen = b as f64 / (b + c) as f64;
            assert!(
                (seen - share_b).abs() <= tolerance,
                "step {step}, {n} requests: b share {seen:.3}"
            );
        }
    }
}

#[test]
fn the_split_applies_to_tcp_and_to_every_http_request_since_it_has_no_matches() {
    let mut cluster = after_fixture();
    apply_split(&mut cluster, "08");
    let snapshot = cluster.snapshot(Options::default().permissive(true));
    let h = headers(&[("user-agent", "curl/8")]);
    for request in [Some(HttpRequest::new("POST", "/call", &h)), None] {
        let route = snapshot.route(app_svc(), request.as_ref());
        let split = match route {
            Route::Split(split) => split,
            other => panic!("expected a split, got {other:?}"),
        };
        assert_eq!(
            (split.meta().name.as_str(), split.root()),
            ("server-split", "app-svc")
        );
    }
    // Backends are not roots themselves: calling app-b directly is not split.
    let app_b = ServiceName {
        namespace: NAMESPACE,
        name: "app-b",
    };
    assert!(matches!(snapshot.route(app_b, None), Route::Unsplit));
}
