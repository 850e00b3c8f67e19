//! `smictl` as scripts use it: real files, the real binary, exit codes and output formats.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const EXAMPLE_POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/bookstore/policy"
);

fn smictl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smictl"))
        .args(args)
        .output()
        .expect("run smictl")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

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
fn check_allows_bookbuyer_and_names_the_deciding_target_rule_and_match() {
    let out = smictl(&[
        "check",
        "--policy",
        EXAMPLE_POLICY,
        "--from",
        "bookbuyer/bookbuyer",
        "--to",
        "bookstore/bookstore",
        "--http",
        "GET",
        "/books-bought",
        "--output",
        "json",
    ]);
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
    smictl(&[
        "check",
        "--policy",
        EXAMPLE_POLICY,
        "--from",
        "bookbuyer/bookbuyer",
        "--to",
        "bookstore/bookstore",
        "--http",
        "GET",
        path,
        "--output",
        output,
    ])
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

#[test]
fn check_denies_bookthief_with_exit_code_1() {
    let out = smictl(&[
        "check",
        "--policy",
        EXAMPLE_POLICY,
        "--from",
        "bookthief/bookthief",
        "--to",
        "bookstore/bookstore",
        "--http",
        "GET",
        "/buy-a-book/new",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with("DENY bookthief/bookthief -> bookstore/bookstore"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn check_explains_which_targets_were_considered_on_a_route_denial() {
    let out = smictl(&[
        "check",
        "--policy",
        EXAMPLE_POLICY,
        "--from",
        "bookbuyer/bookbuyer",
        "--to",
        "bookstore/bookstore",
        "--http",
        "DELETE",
        "/books-bought",
        "--output",
        "json",
    ]);
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
    let out = smictl(&[
        "check",
        "--policy",
        EXAMPLE_POLICY,
        "--from",
        "bookthief/bookthief",
        "--to",
        "bookstore/bookstore",
        "--permissive",
    ]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn check_exits_2_on_usage_errors_and_broken_policy() {
    let out = smictl(&[
        "check",
        "--policy",
        EXAMPLE_POLICY,
        "--from",
        "nonamespace",
        "--to",
        "a/b",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = smictl(&[
        "check",
        "--policy",
        EXAMPLE_POLICY,
        "--from",
        "a/b",
        "--to",
        "a/b",
        "--header",
        "no-colon",
    ]);
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

/// Runs smictl with stdout a pipe whose read end is already closed: every write fails with
/// EPIPE (Rust ignores SIGPIPE, so the process sees the error instead of dying).
fn smictl_with_stdout_closed(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_smictl"))
        .args(args)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run smictl")
}

#[test]
fn a_closed_stdout_keeps_the_documented_exit_codes_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "bad.yaml",
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\n\
         metadata: {name: canary, namespace: web}\n\
         spec: {service: web, backends: [{service: v1, weight: -1}]}\n",
    );
    let bad = dir.path().to_str().unwrap();
    let check = |from: &'static str| {
        vec![
            "check",
            "--policy",
            EXAMPLE_POLICY,
            "--from",
            from,
            "--to",
            "bookstore/bookstore",
            "--http",
            "GET",
            "/books-bought",
        ]
    };
    let mut json = check("bookbuyer/bookbuyer");
    json.extend(["--output", "json"]);
    let cases: Vec<(Vec<&str>, i32)> = vec![
        (vec!["validate", bad], 1),
        (check("bookthief/bookthief"), 1),
        (check("bookbuyer/bookbuyer"), 0),
        (json, 0),
        (
            vec![
                "route",
                "--policy",
                EXAMPLE_POLICY,
                "--service",
                "bookstore/bookstore",
            ],
            0,
        ),
    ];
    for (args, code) in cases {
        let out = smictl_with_stdout_closed(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // validate still says on stderr what it found.
    let out = smictl_with_stdout_closed(&["validate", bad]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid: 0 SMI resource(s)"), "{err}");
}

/// A control service with an admin token, on 127.0.0.1 port 0, and `smictl status` against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_sends_the_admin_token_and_says_why_it_was_refused() {
    use smi_control::serve::{ServeConfig, ServeError, start};
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy");
    fs::create_dir(&policy).unwrap();
    let token_file = write(dir.path(), "admin.token", "s3cret-admin-token\n");
    let config = |token_mode: u32| {
        fs::set_permissions(&token_file, fs::Permissions::from_mode(token_mode)).unwrap();
        ServeConfig {
            policy_dir: policy.clone(),
            state_dir: dir.path().join("state"),
            listen: "127.0.0.1:0".parse().unwrap(),
            admin: "127.0.0.1:0".parse().unwrap(),
            admin_token_file: Some(token_file.clone()),
            ..ServeConfig::default()
        }
    };
    // A token others can read: the control does not start.
    let err = start(config(0o644)).await.unwrap_err();
    assert!(matches!(err, ServeError::AdminToken(_)), "{err}");
    assert!(err.to_string().contains("chmod 600"), "{err}");

    let control = start(config(0o600)).await.unwrap();
    let admin = control.admin_addr.to_string();
    let status = move |extra: Vec<String>| {
        let admin = admin.clone();
        tokio::task::spawn_blocking(move || {
            let mut args = vec!["status".to_owned(), "--admin".to_owned(), admin];
            args.extend(extra);
            Command::new(env!("CARGO_BIN_EXE_smictl"))
                .args(&args)
                .env_remove("SMI_ADMIN_TOKEN")
                .output()
                .unwrap()
        })
    };
    let refused = status(vec![]).await.unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(err.contains("401") && err.contains("--token-file"), "{err}");

    let token = token_file.to_str().unwrap().to_owned();
    let served = status(vec!["--token-file".into(), token]).await.unwrap();
    assert_eq!(
        served.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&served.stderr)
    );
    assert!(
        stdout(&served).contains("workloads connected: 0"),
        "{}",
        stdout(&served)
    );
    control.shutdown().await;
}

#[test]
fn token_create_prints_the_tokens_id_which_revoke_takes() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let made = smictl(&[
        "token",
        "create",
        "--state-dir",
        state,
        "--identity",
        "shop/web",
        "--uses",
        "3",
    ]);
    assert_eq!(made.status.code(), Some(0));
    let token = stdout(&made);
    let claims = smi_core::token::parse(token.trim()).unwrap().claims;
    assert_eq!(claims.uses, 3);
    let err = String::from_utf8_lossy(&made.stderr);
    assert!(
        err.contains(&format!(
            "token id {}: enrolls 3 workload(s) as shop/web",
            claims.jti
        )),
        "{err}"
    );
    assert_eq!(
        smictl(&[
            "token",
            "create",
            "--state-dir",
            state,
            "--identity",
            "a/b",
            "--uses",
            "0"
        ])
        .status
        .code(),
        Some(2)
    );

    let revoked = smictl(&["revoke", "--state-dir", state, "--token", &claims.jti]);
    assert_eq!(revoked.status.code(), Some(0));
    let listed = smictl(&["revoke", "--state-dir", state, "--list"]);
    assert_eq!(listed.status.code(), Some(0));
    assert!(stdout(&listed).starts_with(&format!("token     {}  revoked ", claims.jti)));
    // Nothing said to revoke is a usage error.
    assert_eq!(
        smictl(&["revoke", "--state-dir", state]).status.code(),
        Some(2)
    );
}
