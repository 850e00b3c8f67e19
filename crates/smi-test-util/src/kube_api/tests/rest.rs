//! REST through `kube::Api`: CRUD of built-in and custom resources, conflicts, finalizers and
//! authentication.

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::{
    api_error, client, config, namespace, traffic_split, traffic_split_crd, traffic_split_resource,
};
use crate::kube_api::FakeApiServer;

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "web:1"}], "serviceAccountName": "web"},
    }))
    .expect("a pod")
}

#[tokio::test]
async fn pods_round_trip_through_kube_api() {
    let server = FakeApiServer::start().await;
    let pods: Api<Pod> = Api::namespaced(client(&server).await, "default");

    let created = pods
        .create(&PostParams::default(), &pod("web-1"))
        .await
        .expect("created");
    let meta = &created.metadata;
    assert!(
        meta.uid.is_some() && meta.creation_timestamp.is_some(),
        "{meta:?}"
    );
    assert_eq!(meta.generation, Some(1));
    let rv: u64 = meta
        .resource_version
        .as_deref()
        .expect("a resourceVersion")
        .parse()
        .expect("an integer");
    assert_eq!(
        created.status.and_then(|s| s.phase).as_deref(),
        Some("Pending")
    );

    let again = pods
        .create(&PostParams::default(), &pod("web-1"))
        .await
        .expect_err("exists");
    let status = api_error(again);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "AlreadyExists")
    );

    let got = pods.get("web-1").await.expect("got");
    assert_eq!(got.metadata.uid, meta.uid);
    let listed = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("listed");
    assert_eq!(listed.items.len(), 1);
    assert!(
        listed
            .metadata
            .resource_version
            .expect("a list revision")
            .parse::<u64>()
            .expect("an integer")
            >= rv
    );

    let merge = Patch::Merge(json!({"metadata": {"labels": {"tier": "front"}}}));
    let patched = pods
        .patch("web-1", &PatchParams::default(), &merge)
        .await
        .expect("patched");
    assert_eq!(
        patched
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("tier"))
            .map(String::as_str),
        Some("front")
    );
    assert_eq!(
        patched.metadata.generation,
        Some(1),
        "metadata changes leave the generation"
    );
    assert!(
        patched
            .metadata
            .resource_version
            .expect("rv")
            .parse::<u64>()
            .expect("int")
            > rv
    );

    let apply = Patch::Apply(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1"},
                                    "spec": {"containers": [{"name": "app", "image": "web:2"}]}}),
    );
    let applied = pods
        .patch("web-1", &PatchParams::apply("test").force(), &apply)
        .await
        .expect("applied");
    assert_eq!(
        applied.spec.expect("spec").containers[0].image.as_deref(),
        Some("web:2")
    );
    assert_eq!(
        applied.metadata.generation,
        Some(2),
        "a spec change bumps the generation"
    );

    let deleted = pods
        .delete("web-1", &DeleteParams::default())
        .await
        .expect("deleted");
    assert!(deleted.is_left(), "a pod's delete answers the pod");
    let gone = api_error(pods.get("web-1").await.expect_err("gone"));
    assert_eq!((gone.code, gone.reason.as_str()), (404, "NotFound"));
    assert_eq!(gone.message, "pods \"web-1\" not found");

    let elsewhere: Api<Pod> = Api::namespaced(client(&server).await, "nowhere");
    let refused = api_error(
        elsewhere
            .create(&PostParams::default(), &pod("p"))
            .await
            .expect_err("no namespace"),
    );
    assert_eq!(
        (refused.code, refused.message.as_str()),
        (404, "namespaces \"nowhere\" not found")
    );
}

#[tokio::test]
async fn custom_resources_round_trip_in_every_served_version() {
    let server = FakeApiServer::start().await;
    server.apply(traffic_split_crd(&["v1alpha4", "v1alpha3"]));
    server.apply(namespace("shop"));
    let client = client(&server).await;
    let v4: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "shop", &traffic_split_resource("v1alpha4"));
    let v3: Api<DynamicObject> =
        Api::namespaced_with(client, "shop", &traffic_split_resource("v1alpha3"));

    let object: DynamicObject =
        serde_json::from_value(traffic_split("v1alpha3", "split", 90)).expect("an object");
    v3.create(&PostParams::default(), &object)
        .await
        .expect("created through v1alpha3");
    let through_v4 = v4.get("split").await.expect("served in v1alpha4");
    let types = through_v4.types.as_ref().expect("apiVersion and kind");
    assert_eq!(
        (types.api_version.as_str(), types.kind.as_str()),
        ("split.smi-spec.io/v1alpha4", "TrafficSplit")
    );
    assert_eq!(
        through_v4.data["spec"]["backends"][0]["weight"], 90,
        "the body is unchanged"
    );
    let stored = server
        .get(
            "split.smi-spec.io/v1alpha4",
            "trafficsplits",
            Some("shop"),
            "split",
        )
        .expect("stored");
    assert_eq!(stored["spec"], through_v4.data["spec"]);

    let patch = Patch::Merge(json!({"spec": {"backends": [{"service": "web-v2", "weight": 10}]}}));
    let patched = v4
        .patch("split", &PatchParams::default(), &patch)
        .await
        .expect("patched");
    assert_eq!(patched.data["spec"]["backends"][0]["service"], "web-v2");
    assert_eq!(
        v3.get("split").await.expect("got").data["spec"]["backends"][0]["weight"],
        10
    );

    let wrong: DynamicObject =
        serde_json::from_value(traffic_split("v1alpha3", "other", 1)).expect("an object");
    let refused = api_error(
        v4.create(&PostParams::default(), &wrong)
            .await
            .expect_err("wrong version"),
    );
    assert_eq!(refused.code, 400, "{}", refused.message);

    let deleted = v4
        .delete("split", &DeleteParams::default())
        .await
        .expect("deleted");
    assert!(
        deleted.is_left(),
        "a custom resource's delete answers the object"
    );
    assert!(v3.get_opt("split").await.expect("answered").is_none());

    server.delete(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        None,
        "trafficsplits.split.smi-spec.io",
    );
    let unserved = api_error(
        v4.list(&ListParams::default())
            .await
            .expect_err("no longer served"),
    );
    assert_eq!(unserved.code, 404);
}

#[tokio::test]
async fn a_stale_resource_version_put_gets_409_conflict() {
    let server = FakeApiServer::start().await;
    let maps: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");
    let map: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "settings"}, "data": {"mode": "a"}}))
            .expect("a map");
    let first = maps
        .create(&PostParams::default(), &map)
        .await
        .expect("created");

    let mut current = first.clone();
    current.data = Some([("mode".to_owned(), "b".to_owned())].into());
    let second = maps
        .replace("settings", &PostParams::default(), &current)
        .await
        .expect("replaced at its version");
    assert_ne!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );

    let mut stale = first;
    stale.data = Some([("mode".to_owned(), "c".to_owned())].into());
    let status = api_error(
        maps.replace("settings", &PostParams::default(), &stale)
            .await
            .expect_err("stale"),
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status.message.contains("the object has been modified"),
        "{}",
        status.message
    );
    let kept = server
        .get("v1", "ConfigMap", Some("default"), "settings")
        .expect("kept");
    assert_eq!(kept["data"]["mode"], "b");

    let unchanged = maps
        .replace("settings", &PostParams::default(), &second)
        .await
        .expect("a no-op replace");
    assert_eq!(
        unchanged.metadata.resource_version, second.metadata.resource_version,
        "nothing changed, no new revision"
    );
}

#[tokio::test]
async fn requests_without_the_bearer_token_get_401() {
    let server = FakeApiServer::start().await;
    let mut anonymous = config(&server).await;
    anonymous.auth_info = Default::default();
    let pods: Api<Pod> = Api::namespaced(
        kube::Client::try_from(anonymous).expect("a client"),
        "default",
    );
    let status = api_error(
        pods.list(&ListParams::default())
            .await
            .expect_err("unauthenticated"),
    );
    assert_eq!((status.code, status.reason.as_str()), (401, "Unauthorized"));

    let authenticated: Api<Pod> = Api::namespaced(client(&server).await, "default");
    authenticated
        .list(&ListParams::default())
        .await
        .expect("with the token");
    let logged: Vec<(u16, String)> = server
        .requests()
        .iter()
        .map(|r| (r.status.as_u16(), r.path().to_owned()))
        .collect();
    assert_eq!(
        logged,
        [
            (401, "/api/v1/namespaces/default/pods".to_owned()),
            (200, "/api/v1/namespaces/default/pods".to_owned())
        ]
    );
}

#[tokio::test]
async fn finalizers_hold_a_deleted_object_until_they_are_removed() {
    let server = FakeApiServer::start().await;
    let maps: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");
    let map: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "held", "finalizers": ["smi-mesh.io/cleanup"]}}),
    )
    .expect("a map");
    maps.create(&PostParams::default(), &map)
        .await
        .expect("created");
    maps.delete("held", &DeleteParams::default())
        .await
        .expect("delete accepted");
    let marked = maps.get("held").await.expect("still there");
    assert!(marked.metadata.deletion_timestamp.is_some());

    let release = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    maps.patch("held", &PatchParams::default(), &release)
        .await
        .expect("finalizer removed");
    assert!(
        maps.get_opt("held").await.expect("answered").is_none(),
        "gone once no finalizer holds it"
    );
    let stored: Option<Value> = server.get("v1", "configmaps", Some("default"), "held");
    assert_eq!(stored, None);
}
