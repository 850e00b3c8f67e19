//! smictl with its stdout closed (a pipe whose reader went away, as in `smictl ... | head`):
//! the documented exit codes, and no panic.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;

use std::process::Output;

use common::{EXAMPLE_POLICY, check_args, smictl_command, write};

/// Runs smictl with stdout a pipe whose read end is already closed: every write fails with
/// EPIPE (Rust ignores SIGPIPE, so the process sees the error instead of dying).
fn smictl_with_stdout_closed(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    smictl_command()
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
        check_args(
            from,
            "bookstore/bookstore",
            &["--http", "GET", "/books-bought"],
        )
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
