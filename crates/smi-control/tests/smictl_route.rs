//! `smictl route` as scripts use it: backends, probabilities and seeded samples, as JSON.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;

use common::{EXAMPLE_POLICY, smictl};
use serde_json::Value;

#[test]
fn route_reports_backends_probabilities_and_seeded_samples() {
    let args = [
        "route",
        "--policy",
        EXAMPLE_POLICY,
        "--service",
        "bookstore.bookstore.svc.cluster.local",
        "--samples",
        "1000",
        "--seed",
        "3",
        "--output",
        "json",
    ];
    let out = smictl(&args);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"], "split");
    assert_eq!(v["backends"][0]["service"], "bookstore-v1");
    assert_eq!(v["backends"][0]["weight"], 50);
    assert_eq!(v["backends"][0]["probability"], 0.5);
    let counts = &v["samples"]["counts"];
    let total = counts["bookstore-v1"].as_u64().unwrap() + counts["bookstore-v2"].as_u64().unwrap();
    assert_eq!(total, 1000);
    // The same seed gives the same counts.
    assert_eq!(
        serde_json::from_slice::<Value>(&smictl(&args).stdout).unwrap(),
        v
    );
}

#[test]
fn route_lists_the_root_service_itself_when_there_is_no_split() {
    let out = smictl(&[
        "route",
        "--policy",
        EXAMPLE_POLICY,
        "--service",
        "bookwarehouse/bookwarehouse",
        "--output",
        "json",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"], "unsplit");
    assert_eq!(v["backends"][0]["service"], "bookwarehouse");
    assert_eq!(v["backends"][0]["probability"], 1.0);
}
