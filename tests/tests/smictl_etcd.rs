//! `smictl apply`, `get` and `delete` against a real etcd (Debian's etcd-server on 127.0.0.1):
//! validated as `smictl validate` before anything is written, all or nothing, `--dry-run`
//! writes nothing, and the policy in etcd must still load with the change.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::ExitCode;

use smi_test_util::bookstore::{ACCESS, split};
use smi_test_util::etcd::EtcdCluster;
use smi_test_util::smictl;

const PREFIX: &str = "/smictl-test/";
const SPLIT_KEY: &str = "/smictl-test/policy/TrafficSplit/bookstore/bookstore-split";
const TARGET_KEY: &str = "/smictl-test/policy/TrafficTarget/bookstore/bookbuyer-access-bookstore";

/// `smictl <command> <args> --etcd <cluster> --etcd-prefix PREFIX`, off the test's runtime
/// (smictl runs its own).
async fn run(cluster: &EtcdCluster, command: &[&str], args: Vec<String>) -> ExitCode {
    let endpoints = cluster.endpoints_arg();
    let mut argv: Vec<String> = vec!["smictl".into()];
    argv.extend(command.iter().map(|s| (*s).to_owned()));
    argv.extend([
        "--etcd".into(),
        endpoints,
        "--etcd-prefix".into(),
        PREFIX.into(),
    ]);
    argv.extend(args);
    tokio::task::spawn_blocking(move || {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        smictl(&argv)
    })
    .await
    .unwrap()
}

fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_validates_then_writes_all_or_nothing_and_dry_run_writes_nothing() {
    let cluster = EtcdCluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let policy = file(
        &dir,
        "policy.yaml",
        &format!("{ACCESS}\n---\n{}", split(50, 50)),
    );

    // --dry-run: exit 0, nothing in etcd.
    let code = run(
        &cluster,
        &["apply"],
        vec!["-f".into(), policy.clone(), "--dry-run".into()],
    )
    .await;
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(cluster.get(SPLIT_KEY).await, None);

    // Applied: every resource, in one go.
    assert_eq!(
        run(&cluster, &["apply"], vec!["-f".into(), policy.clone()]).await,
        ExitCode::SUCCESS
    );
    let stored = cluster.get(SPLIT_KEY).await.expect("the split in etcd");
    assert!(stored.contains("bookstore-v1"), "{stored}");
    assert!(cluster.get(TARGET_KEY).await.is_some());

    // A file with an error anywhere: exit 2, and neither its good resources nor its bad one
    // are written.
    let broken = file(
        &dir,
        "broken.yaml",
        &format!(
            "{}\n---\napiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {{name: bad, namespace: bookstore}}\nspec:\n  service: bookstore\n  backends:\n  - {{service: bookstore-v1, weight: -1}}\n",
            split(10, 90)
        ),
    );
    assert_eq!(
        run(&cluster, &["apply"], vec!["-f".into(), broken]).await,
        ExitCode::from(2)
    );
    assert_eq!(
        cluster.get(SPLIT_KEY).await.as_deref(),
        Some(stored.as_str()),
        "the split is as it was"
    );
    assert_eq!(
        cluster
            .get("/smictl-test/policy/TrafficSplit/bookstore/bad")
            .await,
        None
    );

    // A resource valid on its own that the policy in etcd would not load with: a TrafficTarget
    // granting access to a destination in another namespace.
    let foreign = file(
        &dir,
        "foreign.yaml",
        "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: elsewhere, namespace: bookstore}\nspec:\n  destination: {kind: ServiceAccount, name: db, namespace: warehouse}\n  sources:\n  - {kind: ServiceAccount, name: bookbuyer, namespace: bookbuyer}\n  rules:\n  - {kind: HTTPRouteGroup, name: bookstore-service-routes, matches: [buy-a-book]}\n",
    );
    assert_eq!(
        run(&cluster, &["apply"], vec!["-f".into(), foreign]).await,
        ExitCode::from(2)
    );
    assert_eq!(
        cluster
            .get("/smictl-test/policy/TrafficTarget/bookstore/elsewhere")
            .await,
        None
    );

    // get: found and not found.
    let args = |name: &str| vec![name.to_owned(), "-n".into(), "bookstore".into()];
    assert_eq!(
        run(&cluster, &["get", "trafficsplit"], args("bookstore-split")).await,
        ExitCode::SUCCESS
    );
    assert_eq!(
        run(&cluster, &["get", "ts"], args("nothing")).await,
        ExitCode::from(1)
    );

    // delete: --dry-run leaves it, then it goes; a second delete finds nothing.
    let code = run(&cluster, &["delete", "trafficsplit"], {
        let mut a = args("bookstore-split");
        a.push("--dry-run".into());
        a
    })
    .await;
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(cluster.get(SPLIT_KEY).await.is_some());
    assert_eq!(
        run(
            &cluster,
            &["delete", "trafficsplit"],
            args("bookstore-split")
        )
        .await,
        ExitCode::SUCCESS
    );
    assert_eq!(cluster.get(SPLIT_KEY).await, None);
    assert_eq!(
        run(
            &cluster,
            &["delete", "trafficsplit"],
            args("bookstore-split")
        )
        .await,
        ExitCode::from(1)
    );
}
