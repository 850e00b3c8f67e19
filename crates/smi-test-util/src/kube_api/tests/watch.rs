//! Watches through kube-rs: its `watcher` (initial list, resume, relist on 410, recovery after
//! the server went away) and raw `Api::watch` streams for the protocol's details.

use std::collections::BTreeMap;

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams, WatchEvent, WatchParams};
use serde_json::json;

use super::{
    Mirror, client, namespace, next, next_change, traffic_split, traffic_split_crd,
    traffic_split_resource,
};
use crate::kube_api::FakeApiServer;

const SPLITS: &str = "/apis/split.smi-spec.io/v1alpha4/namespaces/shop/trafficsplits";

/// A server with the TrafficSplit CRD, namespace `shop`, and splits `a`, `b`, `c`.
async fn server_with_splits() -> (FakeApiServer, Api<DynamicObject>) {
    let server = FakeApiServer::start().await;
    server.apply(traffic_split_crd(&["v1alpha4"]));
    server.apply(namespace("shop"));
    for name in ["a", "b", "c"] {
        server.apply(traffic_split("v1alpha4", name, 100));
    }
    let api = Api::namespaced_with(
        client(&server).await,
        "shop",
        &traffic_split_resource("v1alpha4"),
    );
    (server, api)
}

fn weight(mirror: &Mirror, name: &str) -> Option<u64> {
    mirror
        .objects
        .get(name)?
        .pointer("/backends/0/weight")?
        .as_u64()
}

fn lists(server: &FakeApiServer) -> usize {
    let requests = server.requests();
    requests
        .iter()
        .filter(|r| r.path() == SPLITS && !r.is_watch() && r.method == http::Method::GET)
        .count()
}

#[tokio::test]
async fn the_watcher_sees_custom_resources_applied_and_deleted() {
    let (server, api) = server_with_splits().await;
    let mut mirror = Mirror::new(api.clone());
    mirror.until("the initial list", |m| m.lists == 1).await;
    assert_eq!(mirror.names(), ["a", "b", "c"]);
    server.wait_for_watch(SPLITS).await;

    let d: DynamicObject =
        serde_json::from_value(traffic_split("v1alpha4", "d", 5)).expect("an object");
    api.create(&PostParams::default(), &d)
        .await
        .expect("created");
    mirror
        .until("d applied", |m| m.objects.contains_key("d"))
        .await;
    server.apply(traffic_split("v1alpha4", "a", 7));
    mirror
        .until("a modified", |m| weight(m, "a") == Some(7))
        .await;
    api.delete("b", &DeleteParams::default())
        .await
        .expect("deleted");
    mirror
        .until("b deleted", |m| !m.objects.contains_key("b"))
        .await;
    assert_eq!(mirror.names(), ["a", "c", "d"]);
    assert_eq!(
        mirror.lists, 1,
        "a live watch needs no relist: {:?}",
        mirror.log
    );
}

#[tokio::test]
async fn after_compaction_and_broken_watches_the_watcher_relists_and_loses_nothing() {
    let (server, api) = server_with_splits().await;
    let mut mirror = Mirror::new(api);
    mirror.until("the initial list", |m| m.lists == 1).await;
    server.wait_for_watch(SPLITS).await;
    assert_eq!(lists(&server), 1);

    // Hold the watcher off while the change happens (its retries get 503), so that it comes
    // back from before the compaction point.
    server.set_unavailable("/apis/split.smi-spec.io/", true);
    server.break_watches();
    server.apply(traffic_split("v1alpha4", "a", 1));
    server.delete(
        "split.smi-spec.io/v1alpha4",
        "TrafficSplit",
        Some("shop"),
        "b",
    );
    server.apply(traffic_split("v1alpha4", "d", 4));
    server.compact();
    server.set_unavailable("/apis/split.smi-spec.io/", false);

    mirror.until("the relisted set", |m| m.lists == 2).await;
    assert_eq!(mirror.names(), ["a", "c", "d"], "{:?}", mirror.log);
    assert_eq!(weight(&mirror, "a"), Some(1));
    assert!(
        mirror.expired >= 1,
        "the resumed watch got 410 Expired: {:?}",
        mirror.log
    );
    assert_eq!(lists(&server), 2, "one relist");

    server.wait_for_watch(SPLITS).await;
    server.apply(traffic_split("v1alpha4", "e", 5));
    mirror
        .until("a change after the relist", |m| m.objects.contains_key("e"))
        .await;
}

#[tokio::test]
async fn after_stop_and_start_again_the_watcher_resumes_with_the_changes_made_meanwhile() {
    let (server, api) = server_with_splits().await;
    let mut mirror = Mirror::new(api);
    mirror.until("the initial list", |m| m.lists == 1).await;
    server.wait_for_watch(SPLITS).await;
    let before = server.resource_version();

    server.stop().await;
    assert!(
        tokio::net::TcpStream::connect(server.addr()).await.is_err(),
        "the port is closed"
    );
    server.apply(traffic_split("v1alpha4", "a", 2));
    server.delete(
        "split.smi-spec.io/v1alpha4",
        "TrafficSplit",
        Some("shop"),
        "c",
    );
    server.start_again().await;

    mirror
        .until("the changes made while stopped", |m| {
            weight(m, "a") == Some(2) && !m.objects.contains_key("c")
        })
        .await;
    assert_eq!(mirror.names(), ["a", "b"]);
    assert_eq!(
        mirror.lists, 1,
        "history was kept: the watch resumed without a relist: {:?}",
        mirror.log
    );
    assert_eq!(
        server.resource_version(),
        before + 2,
        "the revision counter went on"
    );
}

#[tokio::test]
async fn a_watch_from_before_the_compaction_point_gets_410_then_ends() {
    let (server, api) = server_with_splits().await;
    server.compact();
    let mut stream = api
        .watch(&WatchParams::default(), "1")
        .await
        .expect("a watch")
        .boxed();
    match next(&mut stream, "an ERROR event").await {
        Some(Ok(WatchEvent::Error(status))) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            assert!(
                status.message.starts_with("too old resource version: 1"),
                "{}",
                status.message
            );
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    assert!(
        next(&mut stream, "the end").await.is_none(),
        "the stream ends after the error"
    );

    let now = server.resource_version().to_string();
    let mut live = api
        .watch(&WatchParams::default(), &now)
        .await
        .expect("a watch")
        .boxed();
    server.apply(traffic_split("v1alpha4", "f", 6));
    match next_change(&mut live, "f added").await {
        Some(Ok(WatchEvent::Added(o))) => assert_eq!(o.metadata.name.as_deref(), Some("f")),
        other => panic!("expected f ADDED, got {other:?}"),
    }
}

#[tokio::test]
async fn a_watch_of_one_version_sees_writes_through_another() {
    let server = FakeApiServer::start().await;
    server.apply(traffic_split_crd(&["v1alpha4", "v1alpha2"]));
    server.apply(namespace("shop"));
    let client = client(&server).await;
    let v2: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "shop", &traffic_split_resource("v1alpha2"));
    let v4: Api<DynamicObject> =
        Api::namespaced_with(client, "shop", &traffic_split_resource("v1alpha4"));
    let mut stream = v2
        .watch(&WatchParams::default(), "0")
        .await
        .expect("a watch")
        .boxed();
    server
        .wait_for_watch("/apis/split.smi-spec.io/v1alpha2/")
        .await;

    let object: DynamicObject =
        serde_json::from_value(traffic_split("v1alpha4", "x", 30)).expect("an object");
    v4.create(&PostParams::default(), &object)
        .await
        .expect("created through v1alpha4");
    match next_change(&mut stream, "x added").await {
        Some(Ok(WatchEvent::Added(o))) => {
            let types = o.types.expect("apiVersion and kind");
            assert_eq!(types.api_version, "split.smi-spec.io/v1alpha2");
            assert_eq!(o.data["spec"]["backends"][0]["weight"], 30);
        }
        other => panic!("expected x ADDED, got {other:?}"),
    }
}

#[tokio::test]
async fn an_object_that_stops_matching_the_selector_is_sent_as_deleted() {
    let server = FakeApiServer::start().await;
    let maps: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");
    let params = WatchParams::default().labels("app=web");
    let mut stream = maps.watch(&params, "0").await.expect("a watch").boxed();
    server
        .wait_for_watch("/api/v1/namespaces/default/configmaps")
        .await;

    let labelled = |app: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m", "namespace": "default", "labels": {"app": app}}});
    server.apply(labelled("db"));
    server.apply(labelled("web"));
    let rv = match next_change(&mut stream, "m added").await {
        Some(Ok(WatchEvent::Added(m))) => m.metadata.resource_version.expect("a resourceVersion"),
        other => panic!("expected m ADDED when it came to match, got {other:?}"),
    };
    let moved = server.apply(labelled("db"));
    match next_change(&mut stream, "m deleted").await {
        Some(Ok(WatchEvent::Deleted(m))) => {
            let labels = m.metadata.labels.expect("labels");
            assert_eq!(labels["app"], "web", "the last content that matched");
            assert_eq!(
                m.metadata.resource_version.as_ref(),
                moved["metadata"]["resourceVersion"]
                    .as_str()
                    .map(str::to_owned)
                    .as_ref()
            );
            assert_ne!(m.metadata.resource_version, Some(rv));
        }
        other => panic!("expected m DELETED when it left the selector, got {other:?}"),
    }
}

#[tokio::test]
async fn bookmarks_carry_the_latest_resource_version_and_timeouts_end_streams() {
    let server = FakeApiServer::start().await;
    let maps: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");
    server.apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m"}}));
    // Another resource's write moves the revision the bookmark reports.
    server.apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}));
    let now = server.resource_version();
    let params = WatchParams::default().timeout(1);
    let mut stream = maps.watch(&params, "0").await.expect("a watch").boxed();
    server
        .wait_for_watch("/api/v1/namespaces/default/configmaps")
        .await;
    server.bookmark_now();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    loop {
        match next(&mut stream, "a bookmark").await {
            Some(Ok(WatchEvent::Added(_))) => *seen.entry("added").or_default() += 1,
            Some(Ok(WatchEvent::Bookmark(b))) => {
                assert_eq!(b.metadata.resource_version, now.to_string());
                assert_eq!(b.types.kind, "ConfigMap");
                break;
            }
            other => panic!("expected ADDED then BOOKMARK, got {other:?}"),
        }
    }
    assert_eq!(seen.get("added"), Some(&1));
    while let Some(event) = next(&mut stream, "the end after timeoutSeconds").await {
        let event = event.expect("a clean end, not an error");
        assert!(
            matches!(event, WatchEvent::Bookmark(_)),
            "only bookmarks while quiet"
        );
    }
}

#[tokio::test]
async fn the_streaming_list_watcher_gets_initial_events_then_changes() {
    let (server, api) = server_with_splits().await;
    let config = kube::runtime::watcher::Config::default().streaming_lists();
    let mut mirror = Mirror::with_config(api, config);
    mirror.until("the initial events", |m| m.lists == 1).await;
    assert_eq!(mirror.names(), ["a", "b", "c"]);
    assert_eq!(
        lists(&server),
        0,
        "no list: initial events came on the watch"
    );
    let watch = server
        .requests()
        .into_iter()
        .find(|r| r.is_watch())
        .expect("a watch");
    assert_eq!(watch.query("sendInitialEvents").as_deref(), Some("true"));

    server.apply(traffic_split("v1alpha4", "d", 4));
    mirror
        .until("d applied", |m| m.objects.contains_key("d"))
        .await;
}

#[tokio::test]
async fn a_watch_ends_when_its_crd_is_deleted() {
    let (server, api) = server_with_splits().await;
    let now = server.resource_version().to_string();
    let mut stream = api
        .watch(&WatchParams::default(), &now)
        .await
        .expect("a watch")
        .boxed();
    server.wait_for_watch(SPLITS).await;
    server.delete(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        None,
        "trafficsplits.split.smi-spec.io",
    );
    let mut deleted = Vec::new();
    while let Some(event) = next_change(&mut stream, "the objects deleted, then the end").await {
        match event {
            Ok(WatchEvent::Deleted(o)) => deleted.push(o.metadata.name.unwrap_or_default()),
            other => panic!("expected DELETED events, got {other:?}"),
        }
    }
    assert_eq!(deleted, ["a", "b", "c"]);
}
