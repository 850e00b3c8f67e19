//! What `smictl apply` decides before etcd is contacted, and the command line of the etcd
//! commands (those against a real etcd are in `tests/tests/`).

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};

use super::*;
use crate::cli::{Cli, Command};
use crate::etcd::keys::Keys;

const ACCESS: &str = include_str!("../../../../../examples/bookstore/policy/bookstore-access.yaml");
const SPLIT: &str = include_str!("../../../../../examples/bookstore/policy/bookstore-split.yaml");

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

/// An etcd URL nothing listens on.
fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

fn apply_args(argv: &[&str]) -> ApplyArgs {
    match Cli::try_parse_from(["smictl", "apply"].iter().chain(argv))
        .unwrap()
        .command
    {
        Command::Apply(args) => args,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_command_line_is_well_formed() {
    Cli::command().debug_assert();
}

#[test]
fn invalid_files_are_refused_before_etcd_is_contacted() {
    let dir = tempfile::tempdir().unwrap();
    let broken = write(
        dir.path(),
        "split.yaml",
        &SPLIT.replace(
            "weight: 50\n  - service: bookstore-v2",
            "weight: -1\n  - service: bookstore-v2",
        ),
    );
    let etcd = closed_port();
    let args = apply_args(&["-f", broken.to_str().unwrap(), "--etcd", &etcd]);
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    assert_eq!(run(&args, &mut out), ExitCode::from(EXIT_USAGE));
    assert!(out.is_empty());
    // etcd is tried for seconds (its request timeout) before it is given up on.
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert!(load(&args.files).is_err());

    // Files without SMI policy are refused too.
    let other = write(
        dir.path(),
        "service.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n",
    );
    assert!(load(&[other]).is_err());
    // And without --etcd, whatever the files.
    let args = apply_args(&["-f", dir.path().to_str().unwrap()]);
    assert_eq!(run(&args, &mut out), ExitCode::from(EXIT_USAGE));
}

#[test]
fn the_files_smi_objects_are_read_as_the_loader_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy");
    fs::create_dir(&policy).unwrap();
    write(&policy, "a-access.yaml", ACCESS);
    // A later file's object of the same kind, namespace and name replaces the earlier one.
    write(&policy, "b-split.yaml", SPLIT);
    write(
        &policy,
        "c-split.yaml",
        &SPLIT.replace("weight: 50", "weight: 70"),
    );
    write(
        &policy,
        "d-list.json",
        r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}},
            {"apiVersion": "split.smi-spec.io/v1alpha4", "kind": "TrafficSplit",
             "metadata": {"name": "plain"}, "spec": {"service": "s", "backends": []}}]}"#,
    );
    write(&policy, "notes.txt", "not policy");
    let (objects, skipped) = load(&[policy]).unwrap();
    assert_eq!(skipped, 1, "the Deployment");
    let keys = Keys::new("/smi-mesh/");
    let named: Vec<String> = objects.iter().map(|o| o.key(&keys)).collect();
    assert_eq!(
        named,
        [
            "/smi-mesh/policy/HTTPRouteGroup/bookstore/bookstore-service-routes",
            "/smi-mesh/policy/TrafficTarget/bookstore/bookbuyer-access-bookstore",
            "/smi-mesh/policy/TrafficSplit/bookstore/bookstore-split",
            "/smi-mesh/policy/TrafficSplit/default/plain",
        ]
    );
    assert_eq!(objects[2].value["spec"]["backends"][0]["weight"], 70);
    // Stored as written: the YAML's fields as JSON, nothing added (no namespace for `plain`).
    assert_eq!(
        objects[3].value,
        serde_json::json!({"apiVersion": "split.smi-spec.io/v1alpha4", "kind": "TrafficSplit",
            "metadata": {"name": "plain"}, "spec": {"service": "s", "backends": []}})
    );
    // Compact JSON.
    let bytes = objects[3].bytes();
    assert!(!bytes.contains(&b' ') && !bytes.contains(&b'\n'));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
        objects[3].value
    );
}

#[test]
fn the_etcd_commands_parse_as_documented() {
    let parse =
        |argv: &[&str]| Cli::try_parse_from(std::iter::once("smictl").chain(argv.iter().copied()));
    let etcd = ["--etcd", "http://10.0.0.1:2379,http://10.0.0.2:2379"];
    let Command::Get(get) = parse(
        &[
            &["get", "TS", "books", "-n", "shop", "-o", "json"][..],
            &etcd,
        ]
        .concat(),
    )
    .unwrap()
    .command
    else {
        panic!()
    };
    assert_eq!(get.kind, kind::Kind::TrafficSplit);
    assert_eq!(get.etcd.endpoints.len(), 2);
    assert!(parse(&["get", "deployments", "--etcd", "http://e"]).is_err());
    let Command::Delete(delete) = parse(&[&["delete", "tt", "t"][..], &etcd].concat())
        .unwrap()
        .command
    else {
        panic!()
    };
    assert_eq!(delete.namespace, "default");
    assert!(
        parse(&["delete", "tt", "--etcd", "http://e"]).is_err(),
        "NAME is required"
    );
    assert!(parse(&["etcd", "seal-key", "--out", "k"]).is_ok());
    assert!(parse(&["etcd", "seal-key"]).is_err());
}

#[test]
fn the_state_commands_take_a_state_directory_or_etcd_but_not_both() {
    let parse =
        |argv: &[&str]| Cli::try_parse_from(std::iter::once("smictl").chain(argv.iter().copied()));
    for command in [
        &["token", "create", "--identity", "a/b"][..],
        &["revoke", "--list"],
        &["ca", "rotate"],
    ] {
        let with = |extra: &[&str]| parse(&[command, extra].concat());
        assert!(with(&["--state-dir", "s"]).is_ok(), "{command:?}");
        assert!(
            with(&["--etcd", "http://e", "--seal-key", "k"]).is_ok(),
            "{command:?}"
        );
        assert!(with(&[]).is_err(), "{command:?} needs one");
        assert!(
            with(&["--state-dir", "s", "--etcd", "http://e"]).is_err(),
            "{command:?} takes one"
        );
    }
}
