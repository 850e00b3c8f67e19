//! The crate map's dependency arrows (ARCHITECTURE.md, "Crates"), checked against each crate's
//! Cargo.toml: a workload links the data plane, never the control; the control shares only
//! smi-core and smi-tls with workloads; smi-core depends on nothing of ours; no shipped crate
//! depends on the test fixtures; the benchmarks do not depend on the examples.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::path::Path;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The workspace packages (`smi-*`) a manifest lists in `[dependencies]` and, separately, in
/// `[dev-dependencies]` (build-dependencies count as dependencies).
fn ours(manifest: &str) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(Path::new(ROOT).join(manifest))
        .unwrap_or_else(|e| panic!("{manifest}: {e}"));
    let (mut normal, mut dev) = (Vec::new(), Vec::new());
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            // `[dependencies.smi-core]` is one dependency written as a table.
            let table = line.trim_matches(['[', ']']);
            if let Some((kind, name)) = table.split_once('.').filter(|(_, n)| n.starts_with("smi-"))
            {
                match kind {
                    "dependencies" | "build-dependencies" => normal.push(name.to_owned()),
                    "dev-dependencies" => dev.push(name.to_owned()),
                    _ => {}
                }
            }
            section = line.to_owned();
            continue;
        }
        let Some(name) = line
            .split(['=', ' ', '.'])
            .next()
            .filter(|n| n.starts_with("smi-"))
        else {
            continue;
        };
        match section.as_str() {
            "[dependencies]" | "[build-dependencies]" => normal.push(name.to_owned()),
            "[dev-dependencies]" => dev.push(name.to_owned()),
            _ => {}
        }
    }
    (normal, dev)
}

#[test]
fn the_crates_depend_only_along_the_allowed_arrows() {
    let allowed: [(&str, &[&str]); 5] = [
        ("crates/smi-core/Cargo.toml", &[]),
        ("crates/smi-tls/Cargo.toml", &["smi-core"]),
        ("crates/smi-client/Cargo.toml", &["smi-core", "smi-tls"]),
        (
            "crates/smi-server/Cargo.toml",
            &["smi-core", "smi-tls", "smi-client"],
        ),
        ("crates/smi-control/Cargo.toml", &["smi-core", "smi-tls"]),
    ];
    for (manifest, may) in allowed {
        let (normal, dev) = ours(manifest);
        for dependency in &normal {
            assert!(
                may.contains(&dependency.as_str()),
                "{manifest} depends on {dependency}; allowed: {may:?}"
            );
        }
        // Dev-dependencies may add the fixtures and the crate itself (for its test feature),
        // never another arrow.
        let package = manifest.split('/').nth(1).unwrap();
        for dependency in &dev {
            let fixture = dependency == "smi-test-util" || dependency == package;
            assert!(
                fixture || may.contains(&dependency.as_str()),
                "{manifest} dev-depends on {dependency}"
            );
        }
    }
}

#[test]
fn only_tests_and_benchmarks_use_the_fixtures_and_benchmarks_stand_alone() {
    for manifest in ["examples/Cargo.toml", "crates/smi-control/Cargo.toml"] {
        let (normal, _) = ours(manifest);
        assert!(
            !normal.contains(&"smi-test-util".to_owned()),
            "{manifest}: {normal:?}"
        );
    }
    let (normal, dev) = ours("benches/Cargo.toml");
    assert!(
        !normal.iter().chain(&dev).any(|d| d == "smi-examples"),
        "benches depend on the examples: {normal:?} {dev:?}"
    );
    // The parser sees what it should: the benchmarks do use the fixtures.
    assert!(normal.contains(&"smi-test-util".to_owned()), "{normal:?}");
}
