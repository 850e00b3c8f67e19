//! What the server does for particular kinds and subresources: status subresources, Service
//! and Secret defaults, namespace deletion.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::client;
use crate::kube_api::FakeApiServer;

#[tokio::test]
async fn status_is_written_only_through_the_status_subresource() {
    let server = FakeApiServer::start().await;
    let pods: Api<Pod> = Api::namespaced(client(&server).await, "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web-1"},
        "spec": {"containers": [{"name": "app", "image": "web:1"}]},
        "status": {"phase": "Running", "podIP": "10.0.0.9"},
    }))
    .expect("a pod");
    let created = pods
        .create(&PostParams::default(), &pod)
        .await
        .expect("created");
    assert_eq!(
        created.status.as_ref().and_then(|s| s.pod_ip.clone()),
        None,
        "status is not written on create"
    );

    let running = Patch::Merge(json!({"status": {"phase": "Running", "podIP": "10.0.0.9"}}));
    let main = pods
        .patch("web-1", &PatchParams::default(), &running)
        .await
        .expect("patched");
    assert_eq!(
        main.status.and_then(|s| s.pod_ip),
        None,
        "the main resource keeps the status"
    );
    let status = pods
        .patch_status("web-1", &PatchParams::default(), &running)
        .await
        .expect("status patched");
    assert_eq!(
        status.status.and_then(|s| s.pod_ip).as_deref(),
        Some("10.0.0.9")
    );
    assert_eq!(
        status.metadata.generation,
        Some(1),
        "a status change leaves the generation"
    );

    let relabel =
        Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}, "status": {"phase": "Failed"}}));
    let only_status = pods
        .patch_status("web-1", &PatchParams::default(), &relabel)
        .await
        .expect("status patched");
    assert_eq!(
        only_status.metadata.labels, None,
        "/status ignores everything but the status"
    );
    assert_eq!(
        only_status.status.and_then(|s| s.phase).as_deref(),
        Some("Failed")
    );
}

#[tokio::test]
async fn services_get_cluster_ips_and_secrets_fold_string_data() {
    let server = FakeApiServer::start().await;
    let client = client(&server).await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let web: Service = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}}))
    .expect("a service");
    let web = services
        .create(&PostParams::default(), &web)
        .await
        .expect("created");
    let spec = web.spec.expect("a spec");
    let ip = spec.cluster_ip.expect("a cluster IP");
    assert!(ip.starts_with("10.96."), "{ip}");
    assert_eq!(spec.cluster_ips, Some(vec![ip.clone()]));
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    let port = &spec.ports.expect("ports")[0];
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    assert_eq!(
        port.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(80))
    );
    let moved = Patch::Merge(json!({"spec": {"clusterIP": "10.96.9.9"}}));
    let refused = services
        .patch("web", &PatchParams::default(), &moved)
        .await
        .expect_err("immutable");
    assert!(matches!(refused, kube::Error::Api(s) if s.code == 422));

    let secrets: Api<Secret> = Api::namespaced(client, "default");
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "state"}, "stringData": {"k": "v"}}))
            .expect("a secret");
    let stored = secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("created");
    assert_eq!(stored.string_data, None);
    assert_eq!(stored.data.expect("data")["k"].0, b"v");
    assert_eq!(stored.type_.as_deref(), Some("Opaque"));
}

#[tokio::test]
async fn deleting_a_namespace_deletes_what_is_in_it() {
    let server = FakeApiServer::start().await;
    let client = client(&server).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let shop: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "shop"}})).expect("a namespace");
    namespaces
        .create(&PostParams::default(), &shop)
        .await
        .expect("created");
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "shop");
    let map: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "m"}})).expect("a map");
    maps.create(&PostParams::default(), &map)
        .await
        .expect("created in shop");
    server.apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kept"}}));

    namespaces
        .delete("shop", &DeleteParams::default())
        .await
        .expect("deleted");
    assert!(
        namespaces
            .get_opt("shop")
            .await
            .expect("answered")
            .is_none()
    );
    assert!(server.list("v1", "ConfigMap", Some("shop")).is_empty());
    assert_eq!(
        server.list("v1", "ConfigMap", None).len(),
        1,
        "other namespaces keep theirs"
    );
}
