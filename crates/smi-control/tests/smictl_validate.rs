//! `smictl validate` as scripts use it: real files, the real binary, exit codes and output
//! formats.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;

use common::{EXAMPLE_POLICY, smictl, stdout, write};

#[test]
fn validate_accepts_the_bundled_example_policy() {
    let out = smictl(&["validate", EXAMPLE_POLICY]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout(&out), "");
}

#[test]
fn validate_prints_one_line_per_error_naming_file_doc_resource_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\n---\n\
         apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\n\
         metadata: {name: canary, namespace: web}\n\
         spec: {service: web, backends: [{service: v1, weight: 1}, {service: v2, weight: -3}]}\n---\n\
         apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\n\
         metadata: {name: routes, namespace: web}\n\
         spec: {matches: [{name: m, pathRegex: '(unclosed', methods: [GET]}]}\n",
    );
    let out = smictl(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    let file = bad.display().to_string();
    assert_eq!(
        lines,
        vec![
            format!(
                "{file}:doc 2: TrafficSplit web/canary: spec.backends[1].weight: -3 is negative; weights must be >= 0"
            ),
            format!(
                "{file}:doc 3: HTTPRouteGroup web/routes: spec.matches[0].pathRegex: invalid regex \"(unclosed\": error: unclosed group"
            ),
        ]
    );
}

#[test]
fn validate_reports_malformed_yaml_and_keeps_checking_other_files() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", "kind: [unclosed\n");
    write(
        dir.path(),
        "b.yaml",
        "apiVersion: access.smi-spec.io/v1beta9\nkind: TrafficTarget\nmetadata: {name: t}\n",
    );
    let out = smictl(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("a.yaml:doc 1: malformed YAML"), "{text}");
    assert!(
        text.contains("b.yaml:doc 1: TrafficTarget default/t: apiVersion: unsupported version"),
        "{text}"
    );
}

#[test]
fn validate_warns_but_passes_on_dangling_references() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "t.yaml",
        "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: t, namespace: a}\n\
         spec:\n  destination: {kind: ServiceAccount, name: b}\n  sources: [{kind: ServiceAccount, name: c}]\n\
         \x20 rules: [{kind: HTTPRouteGroup, name: missing}]\n",
    );
    let out = smictl(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("HTTPRouteGroup a/missing does not exist"),
        "{err}"
    );
}

#[test]
fn validate_warns_where_a_prefix_admits_more_than_it_spells() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "routes.yaml",
        "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\n\
         metadata: {name: routes, namespace: shop}\n\
         spec: {matches: [{name: exact, pathRegex: /buy$}, {name: broad, pathRegex: /buy-a-book/new}]}\n",
    );
    let out = smictl(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "advice, not an error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("spec.matches[1].pathRegex: \"/buy-a-book/new\" is matched as a prefix"),
        "{stderr}"
    );
    assert!(!stderr.contains("matches[0]"), "{stderr}");
    // The bundled example anchors its paths: no advice.
    let out = smictl(&["validate", EXAMPLE_POLICY]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("0 warning(s)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
