//! The weighted pick gives each backend its share, and weight 0 gets nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use rand::SeedableRng;
use rand::rngs::StdRng;
use smi_core::policy::{Route, ServiceName};
use smi_core::{Format, Options, Snapshot, load_str};

fn split_with(weights: &[u64]) -> Snapshot {
    let mut yaml = String::from(
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: s, namespace: ns}\nspec:\n  service: root\n  backends:\n",
    );
    for (i, w) in weights.iter().enumerate() {
        yaml.push_str(&format!("  - {{service: b{i}, weight: {w}}}\n"));
    }
    let loaded = load_str("split.yaml", &yaml, Format::Yaml);
    assert!(loaded.is_valid(), "{:?}", loaded.diagnostics);
    Snapshot::compile(loaded.policy, Options::default())
}

fn counts(snapshot: &Snapshot, n: usize, seed: u64) -> Vec<usize> {
    let root = ServiceName {
        namespace: "ns",
        name: "root",
    };
    let Route::Split(split) = snapshot.route(root, None) else {
        panic!("expected a split");
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let mut counts = vec![0; split.backends().len()];
    for _ in 0..n {
        let b = split.pick(&mut rng).unwrap();
        let i = split
            .backends()
            .iter()
            .position(|x| x.service == b.service)
            .unwrap();
        counts[i] += 1;
    }
    counts
}

#[test]
fn every_backend_is_within_one_point_of_its_share_over_100_000_picks() {
    for weights in [
        vec![90, 10],
        vec![1, 2, 3, 4],
        vec![75, 25],
        vec![5; 10],
        vec![1000, 500, 1],
    ] {
        let snapshot = split_with(&weights);
        let total: u64 = weights.iter().sum();
        let n = 100_000;
        let got = counts(&snapshot, n, 42);
        for (i, (&w, &c)) in weights.iter().zip(&got).enumerate() {
            let share = w as f64 / total as f64;
            let seen = c as f64 / n as f64;
            assert!(
                (seen - share).abs() <= 0.01,
                "weights {weights:?}: backend {i} got {seen:.4}, share {share:.4}"
            );
        }
    }
}

#[test]
fn weight_zero_receives_exactly_nothing() {
    let snapshot = split_with(&[0, 1, 0]);
    assert_eq!(counts(&snapshot, 10_000, 7), vec![0, 10_000, 0]);
}

#[test]
fn the_same_seed_gives_the_same_picks() {
    let snapshot = split_with(&[3, 7]);
    assert_eq!(counts(&snapshot, 1000, 9), counts(&snapshot, 1000, 9));
}

#[test]
fn all_zero_weights_route_to_the_root_service_with_a_warning() {
    let snapshot = split_with(&[0, 0]);
    let root = ServiceName {
        namespace: "ns",
        name: "root",
    };
    assert!(matches!(snapshot.route(root, None), Route::NoWeight(_)));
    let mut rng = StdRng::seed_from_u64(1);
    assert!(snapshot.route(root, None).pick(&mut rng).is_none());
    assert!(
        snapshot
            .warnings()
            .iter()
            .any(|w| w.to_string().contains("no backend has a weight")),
        "{:?}",
        snapshot.warnings()
    );
}
