//! The control service end to end, policy streaming: a workload gets its policy and then each
//! change within a second, a broken file is reported while the last good policy keeps serving,
//! acknowledgements show in the admin view, and a root rotation reaches subscribers. A real
//! in-process control service on 127.0.0.1, real TLS, real gRPC clients (smi-client), real
//! files. Every wait is on an event, bounded by a timeout (the admin views, which have no push,
//! are asked again until they change).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use smi_client::control::renew;
use smi_control::ca::CaStore;
use smi_core::proto::v1;
use smi_test_util::bookstore::{ACCESS, SPLIT, WAIT};
use smi_test_util::watch::{self, next_update, update_until};
use smi_test_util::{Control, LocalControl, admin};

/// A control service over the bookstore access policy (no split yet).
async fn control() -> LocalControl {
    LocalControl::start(&[("access.yaml", ACCESS)]).await
}

fn targets(update: &v1::PolicyUpdate) -> Vec<String> {
    update.policy.as_ref().map_or_else(Vec::new, |p| {
        p.traffic_targets
            .iter()
            .map(|t| t.meta.as_ref().unwrap().name.clone())
            .collect()
    })
}

fn has_split(update: &v1::PolicyUpdate) -> bool {
    !update.policy.as_ref().unwrap().traffic_splits.is_empty()
}

#[tokio::test]
async fn a_workload_gets_its_policy_then_each_change_within_a_second() {
    let mut control = control().await;
    let creds = control.enroll("bookstore/bookstore", &[]).await;
    let mut stream = watch::open(
        &control,
        &creds,
        v1::WatchRequest {
            services: vec!["bookstore/bookstore".into()],
            workload: "test".into(),
        },
    )
    .await;
    let first = next_update(&mut stream).await;
    assert_eq!(targets(&first), vec!["bookbuyer-access-bookstore"]);
    assert!(first.policy.as_ref().unwrap().traffic_splits.is_empty());

    let written = std::time::Instant::now();
    std::fs::write(control.policy.join("split.yaml"), SPLIT).unwrap();
    let update = update_until(&mut stream, has_split).await;
    let elapsed = written.elapsed();
    assert!(update.version > first.version);
    assert!(
        elapsed < Duration::from_secs(1),
        "the change took {elapsed:?}"
    );
    control.shutdown().await;
}

#[tokio::test]
async fn a_broken_file_is_reported_while_the_last_good_policy_keeps_serving() {
    let mut control = control().await;
    let admin_addr = control.running().admin_addr;
    let creds = control.enroll("bookstore/bookstore", &[]).await;
    let mut client = control.client(&creds).await;
    let everything = v1::WatchRequest {
        services: vec!["*".into()],
        workload: String::new(),
    };
    let mut stream = client.watch(everything.clone()).await.unwrap().into_inner();
    let first = next_update(&mut stream).await;

    std::fs::write(control.policy.join("broken.yaml"), "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: bad}\nspec: {service: x, backends: [{service: y, weight: -1}]}\n").unwrap();
    let policy = admin::json_until(admin_addr, "/debug/policy", WAIT, |p| {
        p["status"]["errors"]
            .as_array()
            .is_some_and(|e| !e.is_empty())
    })
    .await;
    let errors = policy["status"]["errors"].as_array().unwrap();
    assert!(
        errors[0]
            .as_str()
            .unwrap()
            .contains("broken.yaml:doc 1: TrafficSplit default/bad: spec.backends[0].weight"),
        "{errors:?}"
    );
    let metrics = admin::get_json(admin_addr, "/metrics").await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("smi_control_policy_errors 1")
    );
    // Still serving the last good policy: a new subscriber gets it.
    let mut fresh = client.watch(everything).await.unwrap().into_inner();
    let serving = next_update(&mut fresh).await;
    assert_eq!(serving.version, first.version);
    assert_eq!(targets(&serving), targets(&first));

    std::fs::write(control.policy.join("broken.yaml"), SPLIT).unwrap();
    let fixed = update_until(&mut stream, has_split).await;
    assert!(fixed.version > first.version);
    // The admin view follows (it is written just after the update is published).
    admin::json_until(admin_addr, "/debug/policy", WAIT, |p| {
        p["status"]["errors"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    control.shutdown().await;
}

#[tokio::test]
async fn acknowledgements_and_rejections_show_in_the_admin_view() {
    let mut control = control().await;
    let creds = control.enroll("bookstore/bookstore", &[]).await;
    let mut client = control.client(&creds).await;
    let mut stream = client
        .watch(v1::WatchRequest {
            services: vec![],
            workload: "pod-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let update = next_update(&mut stream).await;
    client
        .ack(v1::AckRequest {
            version: update.version,
            accepted: false,
            error: "HTTPRouteGroup x/y: matches[0].path_regex: invalid".into(),
            workload: "pod-1".into(),
        })
        .await
        .unwrap();
    let view = admin::get_json(control.running().admin_addr, "/debug/workloads").await;
    let w = &view["workloads"][0];
    assert_eq!(
        w["identity"],
        "spiffe://cluster.local/ns/bookstore/sa/bookstore"
    );
    assert_eq!(w["workload"], "pod-1");
    assert_eq!(w["acked_version"], update.version);
    assert!(w["rejected"].as_str().unwrap().contains("path_regex"));
    assert!(w["certificate_expires_unix"].as_u64().unwrap() > 0);
    control.shutdown().await;
}

#[tokio::test]
async fn root_rotation_reaches_subscribers_with_both_roots_in_the_bundle() {
    let mut control = control().await;
    let creds = control.enroll("bookstore/bookstore", &[]).await;
    let mut stream = watch::open(&control, &creds, v1::WatchRequest::default()).await;
    assert_eq!(next_update(&mut stream).await.trust_bundle_der.len(), 1);
    CaStore::new(&control.state)
        .rotate("cluster.local", Duration::from_secs(3600))
        .unwrap();
    let update = update_until(&mut stream, |u| u.trust_bundle_der.len() == 2).await;
    // The old root, which signed the workload's certificate, is still trusted.
    assert!(update.trust_bundle_der.contains(&creds.bundle_der()[0]));
    // The old certificate still renews, once the workload trusts the published bundle (the
    // control's own certificate may already chain to the new root).
    let creds = creds.with_bundle(update.trust_bundle_der.clone()).unwrap();
    let renewed = renew(&control.addr(), &creds).await.unwrap();
    assert_eq!(renewed.bundle_der().len(), 2);
    control.shutdown().await;
}
