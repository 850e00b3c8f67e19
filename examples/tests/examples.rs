//! The small examples run and say what they should.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn run(binary: &str) -> String {
    let output = Command::new(binary).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{binary} failed: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn tonic_over_the_mesh_allows_the_client_and_refuses_the_stranger() {
    let out = run(env!("CARGO_BIN_EXE_greeter"));
    assert!(out.contains("greeter-client: Hello friend (you are spiffe://cluster.local/ns/default/sa/greeter-client)"), "{out}");
    assert!(
        out.contains("stranger: PermissionDenied: denied by SMI policy"),
        "{out}"
    );
}

#[test]
fn axum_behind_the_mesh_allows_get_and_forbids_delete() {
    let out = run(env!("CARGO_BIN_EXE_axum-hyper"));
    assert!(
        out.contains("GET /notes -> 200 OK: notes for spiffe://cluster.local/ns/default/sa/reader"),
        "{out}"
    );
    assert!(out.contains("DELETE /notes -> 403 Forbidden"), "{out}");
}
