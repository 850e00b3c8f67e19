//! Telemetry through a real control service: workload names in certificates (enrollment and
//! renewal over the gRPC API), and the admin view of them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;

use std::time::Duration;

use smi_core::proto::v1;
use smi_core::telemetry::Workload;
use smi_tls::{OwnCertificate, peer_identity};

use common::telemetry::{WEB_POD, control};

fn names_of(cert: &OwnCertificate) -> Option<Workload> {
    peer_identity(&cert.chain[0]).unwrap().workload
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_carry_the_workloads_names_and_renewals_keep_them() {
    let control = control().await;
    let web = control
        .certify(None, &control.token("shop/web"), Some(("web", WEB_POD)))
        .await
        .unwrap();
    assert_eq!(names_of(&web), Some(Workload::new("shop", "web", WEB_POD)));
    // Renewal without names: the renewed certificate's.
    let renewed = control.certify(Some(web), "", None).await.unwrap();
    assert_eq!(
        names_of(&renewed),
        Some(Workload::new("shop", "web", WEB_POD))
    );
    // With names: the new ones.
    let moved = control
        .certify(Some(renewed), "", Some(("web", "web-0")))
        .await
        .unwrap();
    assert_eq!(
        names_of(&moved),
        Some(Workload::new("shop", "web", "web-0"))
    );
    let unnamed = control
        .certify(None, &control.token("shop/db"), None)
        .await
        .unwrap();
    assert_eq!(names_of(&unnamed), None);

    let bad = control
        .certify(None, &control.token("shop/web"), Some(("Web!", WEB_POD)))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");
    assert!(
        bad.message().starts_with("names: workload name \"Web!\""),
        "{}",
        bad.message()
    );

    // The admin view shows the names of a connected workload.
    let mut stream = control
        .channel(Some(moved))
        .await
        .watch(v1::WatchRequest {
            services: vec![],
            workload: "host-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .unwrap()
        .unwrap();
    let (status, workloads) = control.admin("/debug/workloads").await;
    assert_eq!(status, 200);
    assert_eq!(
        workloads["workloads"][0]["names"],
        serde_json::json!({"workload": "web", "pod": "web-0"})
    );
    control.running.shutdown().await;
}
