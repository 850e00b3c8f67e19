//! `smictl check` as scripts use it: the decision, which resource made it, exit codes and output
//! formats, against the bundled example policy.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;

use std::process::Output;

use common::{check_args, smictl, stdout, write};
use serde_json::Value;

/// `smictl check --policy <the example> --from <from> --to <to> <rest>`.
fn check(from: &str, to: &str, rest: &[&str]) -> Output {
    smictl(&check_args(from, to, rest))
}

#[test]
fn check_allows_bookbuyer_and_names_the_deciding_target_rule_and_match() {
    let out = check(
        "bookbuyer/bookbuyer",
        "bookstore/bookstore",
        &["--http", "GET", "/books-bought", "--output", "json"],
    );
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"], "allow");
    assert_eq!(
        v["permit"]["traffic_target"],
        "bookstore/bookbuyer-access-bookstore"
    );
    assert_eq!(v["permit"]["rule_kind"], "HTTPRouteGroup");
    assert_eq!(v["permit"]["match"], "books-bought");
}

/// `smictl check` for bookbuyer -> bookstore on `GET path`.
fn check_buyer(path: &str, output: &str) -> Output {
    let rest = ["--http", "GET", path, "--output", output];
    check("bookbuyer/bookbuyer", "bookstore/bookstore", &rest)
}

#[test]
fn check_normalizes_the_path_as_the_data_plane_does_and_says_so() {
    let out = check_buyer("/buy-a-book/new/../../admin/delete-all", "text");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("HTTP GET /admin/delete-all"), "{text}");
    assert!(
        text.contains("path normalized from /buy-a-book/new/../../admin/delete-all"),
        "{text}"
    );
    let out = check_buyer("//buy-a-book/./new", "json");
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["normalized_from"], "//buy-a-book/./new");
    assert_eq!(v["request"], "HTTP GET /buy-a-book/new (any port)");
    // What the data plane refuses with 400 is a DENY here, with the reason.
    let out = check_buyer("/buy-a-book/new%2F..%2Fadmin", "json");
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["reason"], "invalid_request");
    // A canonical path is not reported as normalized.
    let out = check_buyer("/buy-a-book/new", "json");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.get("normalized_from").is_none(), "{v}");
}

#[test]
fn check_denies_bookthief_with_exit_code_1() {
    let out = check(
        "bookthief/bookthief",
        "bookstore/bookstore",
        &["--http", "GET", "/buy-a-book/new"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with("DENY bookthief/bookthief -> bookstore/bookstore"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn check_explains_which_targets_were_considered_on_a_route_denial() {
    let out = check(
        "bookbuyer/bookbuyer",
        "bookstore/bookstore",
        &["--http", "DELETE", "/books-bought", "--output", "json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["reason"], "no_rule_matched");
    assert_eq!(
        v["targets"][0]["traffic_target"],
        "bookstore/bookbuyer-access-bookstore"
    );
}

#[test]
fn check_permissive_allows_anything() {
    let out = check(
        "bookthief/bookthief",
        "bookstore/bookstore",
        &["--permissive"],
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn check_exits_2_on_usage_errors_and_broken_policy() {
    let out = check("nonamespace", "a/b", &[]);
    assert_eq!(out.status.code(), Some(2));
    let out = check("a/b", "a/b", &["--header", "no-colon"]);
    assert_eq!(out.status.code(), Some(2));
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "broken.yaml",
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\n",
    );
    let out = smictl(&[
        "check",
        "--policy",
        dir.path().to_str().unwrap(),
        "--from",
        "a/b",
        "--to",
        "a/b",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("broken.yaml:doc 1: TrafficSplit: metadata: missing")
    );
}
