//! A workload's names and traffic reports with a real control service (in this process): the
//! names it was configured with, and reports the control accepts, from both sides of a call.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use smi_client::{Mesh, MeshClient, MeshError};
use smi_core::telemetry::Workload;
use smi_examples::local::LocalControl;
use smi_server::AuthorizeLayer;

const POLICY: &str = r#"
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: notes-routes, namespace: default}
spec:
  matches:
  - {name: read, pathRegex: /notes, methods: [GET]}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: readers, namespace: default}
spec:
  destination: {kind: ServiceAccount, name: notes, namespace: default}
  sources:
  - {kind: ServiceAccount, name: reader, namespace: default}
  rules:
  - {kind: HTTPRouteGroup, name: notes-routes, matches: [read]}
"#;

const INTERVAL: Duration = Duration::from_millis(100);

/// Waits until `mesh` has delivered a report, re-checking on each status change.
async fn delivered(mesh: &Mesh) {
    let mut changes = mesh.status_changed();
    tokio::time::timeout(Duration::from_secs(10), async {
        while mesh.status().reports_sent == 0 {
            changes.changed().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no report delivered: {:?}", mesh.status()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_of_a_call_report_to_the_control() {
    let control = LocalControl::start(POLICY).await.unwrap();
    let server = Mesh::start(
        control
            .workload("default/notes", &["default/notes"])
            .unwrap()
            .report_interval(INTERVAL),
    )
    .await
    .unwrap();
    assert_eq!(
        server.workload(),
        &Workload::new("default", "notes", "notes")
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let _registration = server.register("default/notes", listener.local_addr().unwrap());
    let router = Router::new().route("/notes", get(|| async { "notes\n" }));
    let app = tower_layer::Layer::layer(&AuthorizeLayer::new(server.clone()), router);
    let serving = tokio::spawn(smi_server::serve(listener, server.clone(), app));

    let reader = Mesh::start(
        control
            .workload("default/reader", &[])
            .unwrap()
            .calls(["default/notes"])
            .report_interval(INTERVAL),
    )
    .await
    .unwrap();
    let mut changes = reader.changed();
    while reader.policy().endpoints("default", "notes").is_empty() {
        tokio::time::timeout(Duration::from_secs(10), changes.changed())
            .await
            .unwrap()
            .unwrap();
    }
    let client: MeshClient<Full<Bytes>> = MeshClient::new(reader.clone());
    // Nothing is reported before there is traffic.
    assert_eq!(
        reader.status().reports_sent + server.status().reports_sent,
        0
    );
    for _ in 0..3 {
        let request = Request::get("http://notes.default/notes")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = client.send(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.into_body().collect().await.unwrap();
    }
    // Then each side's report is accepted.
    delivered(&reader).await;
    delivered(&server).await;
    for mesh in [&reader, &server] {
        assert_eq!(mesh.status().reports_failed, 0, "{:?}", mesh.status());
    }
    serving.abort();
    control.stop().await;
}

#[tokio::test]
async fn a_namespace_other_than_the_identitys_is_refused() {
    let control = LocalControl::start(POLICY).await.unwrap();
    let config = control
        .workload("default/reader", &[])
        .unwrap()
        .namespace("shop");
    let error = Mesh::start(config).await.unwrap_err();
    assert!(matches!(error, MeshError::Namespace { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("\"shop\"") && message.contains("\"default\""),
        "{message}"
    );
    control.stop().await;
}
