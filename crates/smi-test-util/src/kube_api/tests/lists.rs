//! Lists through `kube::Api`: paging with `limit` and `continue` from one snapshot, label and
//! field selectors, and `resourceVersion` reads of the past.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, ListParams, VersionMatch};
use serde_json::json;

use super::{api_error, client};
use crate::kube_api::FakeApiServer;

#[tokio::test]
async fn lists_page_with_limit_and_continue_from_one_snapshot() {
    let server = FakeApiServer::start().await;
    for i in 0..5 {
        server.apply(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("m{i}")}}),
        );
    }
    let maps: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");
    let name = |m: &ConfigMap| m.metadata.name.clone().unwrap_or_default();

    let first = maps
        .list(&ListParams::default().limit(2))
        .await
        .expect("page 1");
    assert_eq!(
        first.items.iter().map(name).collect::<Vec<_>>(),
        ["m0", "m1"]
    );
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    let token = first.metadata.continue_.clone().expect("a continue token");
    server.apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m2a"}}));

    let second = maps
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .expect("page 2");
    assert_eq!(
        second.items.iter().map(name).collect::<Vec<_>>(),
        ["m2", "m3"],
        "m2a came after the snapshot"
    );
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
    let last_token = second.metadata.continue_.clone().expect("another token");
    let third = maps
        .list(&ListParams::default().limit(2).continue_token(&last_token))
        .await
        .expect("page 3");
    assert_eq!(third.items.iter().map(name).collect::<Vec<_>>(), ["m4"]);
    assert!(
        third.metadata.continue_.as_deref().unwrap_or("").is_empty(),
        "the last page"
    );

    server.compact();
    let expired = api_error(
        maps.list(&ListParams::default().limit(2).continue_token(&token))
            .await
            .expect_err("compacted"),
    );
    assert_eq!((expired.code, expired.reason.as_str()), (410, "Expired"));
    let now = maps
        .list(&ListParams::default())
        .await
        .expect("a fresh list");
    assert_eq!(now.items.len(), 6);
}

#[tokio::test]
async fn selectors_filter_endpoint_slices_and_names() {
    let server = FakeApiServer::start().await;
    for (name, service) in [("web-a", "web"), ("web-b", "web"), ("db-a", "db")] {
        server.apply(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "endpoints": [],
        }));
    }
    let gvk = kube::api::GroupVersionKind::gvk("discovery.k8s.io", "v1", "EndpointSlice");
    let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, "endpointslices");
    let slices: Api<DynamicObject> =
        Api::namespaced_with(client(&server).await, "default", &resource);
    let names = |list: kube::core::ObjectList<DynamicObject>| -> Vec<String> {
        list.items
            .into_iter()
            .filter_map(|o| o.metadata.name)
            .collect()
    };
    let web = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await
        .expect("listed");
    assert_eq!(names(web), ["web-a", "web-b"]);
    let both = slices
        .list(
            &ListParams::default()
                .labels("kubernetes.io/service-name in (db,web),kubernetes.io/service-name!=web"),
        )
        .await
        .expect("listed");
    assert_eq!(names(both), ["db-a"]);
    let one = slices
        .list(&ListParams::default().fields("metadata.name=web-b"))
        .await
        .expect("listed");
    assert_eq!(names(one), ["web-b"]);
    let unsupported = api_error(
        slices
            .list(&ListParams::default().fields("spec.color=red"))
            .await
            .expect_err("unsupported"),
    );
    assert_eq!(
        (unsupported.code, unsupported.message.as_str()),
        (400, "field label not supported: spec.color")
    );
}

#[tokio::test]
async fn an_exact_resource_version_list_reads_the_past_until_compacted() {
    let server = FakeApiServer::start().await;
    let maps: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");
    let map = |data: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m"}, "data": {"v": data}});
    server.apply(map("old"));
    let then = server.resource_version().to_string();
    server.apply(map("new"));
    server.apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "later"}}));

    let past = maps
        .list(
            &ListParams::default()
                .at(&then)
                .matching(VersionMatch::Exact),
        )
        .await
        .expect("the past");
    assert_eq!(
        past.metadata.resource_version.as_deref(),
        Some(then.as_str())
    );
    assert_eq!(past.items.len(), 1);
    assert_eq!(past.items[0].data.as_ref().expect("data")["v"], "old");
    let recent = maps
        .list(
            &ListParams::default()
                .at(&then)
                .matching(VersionMatch::NotOlderThan),
        )
        .await
        .expect("now");
    assert_eq!(recent.items.len(), 2);

    server.compact();
    let gone = maps
        .list(
            &ListParams::default()
                .at(&then)
                .matching(VersionMatch::Exact),
        )
        .await
        .expect_err("compacted");
    assert!(matches!(gone, kube::Error::Api(s) if s.code == 410 && s.reason == "Expired"));
}
