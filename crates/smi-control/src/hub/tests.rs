use std::net::SocketAddr;

use smi_core::{Format, ServiceAccount, ServiceRef, load_str};

use super::*;

const POLICY: &str = include_str!("../../../../examples/bookstore/policy/bookstore-access.yaml");
const SPLIT: &str = include_str!("../../../../examples/bookstore/policy/bookstore-split.yaml");

fn subscription(ns: &str, sa: &str) -> Subscription {
    Subscription {
        identity: ServiceAccount::new(ns, sa),
        serves: Vec::new(),
        calls: Vec::new(),
        all: false,
    }
}

fn hub() -> Arc<Hub> {
    let hub = Hub::new(false);
    let text = format!("{POLICY}\n---\n{SPLIT}");
    let loaded = load_str("p.yaml", &text, Format::Yaml);
    hub.set_policy(Arc::new(loaded.policy));
    hub
}

fn endpoint(addr: &str, sa: &str) -> Endpoint {
    Endpoint {
        address: addr.parse::<SocketAddr>().unwrap(),
        identity: ServiceAccount::new("bookstore", sa).spiffe_id("cluster.local"),
    }
}

fn service(name: &str) -> ServiceRef {
    ServiceRef::new("bookstore", name)
}

#[test]
fn a_destination_sees_its_targets_and_their_routes_only() {
    let hub = hub();
    let published = hub.latest();
    let view = published.view(&subscription("bookstore", "bookstore"));
    assert_eq!(view.targets.len(), 1);
    assert_eq!(view.route_groups.len(), 1);
    let other = published.view(&subscription("bookthief", "bookthief"));
    assert!(other.targets.is_empty());
}

#[test]
fn a_caller_sees_the_split_of_a_service_it_calls_and_the_backends_endpoints() {
    let hub = hub();
    let sink = hub.endpoint_sink("test");
    sink.set([(
        service("bookstore-v1"),
        vec![endpoint("127.0.0.1:1", "bookstore")],
    )]);
    let published = hub.latest();
    let view = published.view(&Subscription {
        calls: vec![service("bookstore")],
        ..subscription("bookbuyer", "bookbuyer")
    });
    assert_eq!(view.splits.len(), 1);
    let names: Vec<_> = view
        .endpoints
        .iter()
        .map(|e| (e.service.name.as_str(), e.endpoints.len()))
        .collect();
    assert_eq!(
        names,
        vec![("bookstore", 0), ("bookstore-v1", 1), ("bookstore-v2", 0)]
    );
}

#[test]
fn revoked_identities_reach_every_view() {
    let hub = hub();
    let thief = ServiceAccount::new("bookthief", "bookthief").spiffe_id("cluster.local");
    hub.set_revoked(vec![thief.clone()]);
    let published = hub.latest();
    assert!(published.is_revoked(&thief));
    for (ns, sa) in [("bookstore", "bookstore"), ("bookthief", "bookthief")] {
        let view = published.view(&subscription(ns, sa));
        assert_eq!(view.revoked, std::slice::from_ref(&thief), "{ns}/{sa}");
    }
}

#[test]
fn revoked_identities_are_in_the_order_of_their_uris() {
    let hub = Hub::new(false);
    let ids: Vec<SpiffeId> = ["a", "a-b", "a.b", "ab"]
        .into_iter()
        .map(|ns| ServiceAccount::new(ns, "x").spiffe_id("cluster.local"))
        .collect();
    hub.set_revoked(ids.iter().rev().cloned().collect());
    let published = hub.latest();
    let order: Vec<String> = published.revoked.iter().map(ToString::to_string).collect();
    let mut as_strings = order.clone();
    as_strings.sort();
    assert_eq!(order, as_strings);
    assert!(ids.iter().all(|id| published.is_revoked(id)));
    assert!(!published.is_revoked(&ServiceAccount::new("b", "x").spiffe_id("cluster.local")));
}

#[test]
fn every_change_bumps_the_version_and_reaches_subscribers() {
    let hub = hub();
    let mut rx = hub.subscribe();
    let before = rx.borrow_and_update().version;
    let v = hub.set_bundle(vec![CertificateDer::from(vec![1])]);
    assert!(rx.has_changed().unwrap());
    assert_eq!(rx.borrow_and_update().version, v);
    assert!(v > before);
}

// === endpoint sources ===

#[test]
fn endpoint_sources_merge_and_neither_overwrites_the_other() {
    let hub = Hub::new(false);
    let registry = hub.endpoint_sink("registrations");
    let kubernetes = hub.endpoint_sink("kubernetes");
    registry.set([(service("web"), vec![endpoint("10.0.0.1:80", "web")])]);
    kubernetes.set([(service("web"), vec![endpoint("10.0.0.2:80", "web")])]);
    let merged: Vec<SocketAddr> = hub.latest().endpoints[&service("web")]
        .iter()
        .map(|e| e.address)
        .collect();
    assert_eq!(
        merged,
        [
            "10.0.0.1:80".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap()
        ]
    );
    // One source emptying its list leaves the other's.
    registry.set([(service("web"), Vec::new())]);
    let left = hub.latest();
    assert_eq!(
        *left.endpoints[&service("web")],
        [endpoint("10.0.0.2:80", "web")]
    );
    kubernetes.set([(service("web"), Vec::new())]);
    assert!(hub.latest().endpoints.is_empty());
}

#[test]
fn a_change_to_one_service_shares_every_other_services_list() {
    let hub = Hub::new(false);
    let sink = hub.endpoint_sink("registrations");
    sink.set([
        (service("a"), vec![endpoint("10.0.0.1:80", "a")]),
        (service("b"), vec![endpoint("10.0.0.2:80", "b")]),
    ]);
    let before = hub.latest();
    sink.set([(service("a"), vec![endpoint("10.0.0.3:80", "a")])]);
    let after = hub.latest();
    assert!(Arc::ptr_eq(
        &before.endpoints[&service("b")],
        &after.endpoints[&service("b")]
    ));
    assert_ne!(
        before.endpoints[&service("a")],
        after.endpoints[&service("a")]
    );
    assert_eq!(after.version, before.version + 1);
}

#[test]
fn views_say_partial_until_every_endpoint_source_is_synced() {
    let hub = Hub::new(false);
    assert!(
        hub.latest().endpoints_partial,
        "a hub without sources knows nothing"
    );
    let first = hub.endpoint_sink("registrations");
    let second = hub.endpoint_sink("kubernetes");
    first.synced();
    assert!(hub.latest().endpoints_partial);
    second.synced();
    assert!(!hub.latest().endpoints_partial);
}

// === versions ===

#[test]
fn a_hub_on_a_state_store_numbers_above_every_version_of_its_previous_run() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn crate::traits::StateStore> =
        Arc::new(crate::files::StateDir::new(dir.path()));
    let first = Hub::with_versions(false, Versions::from_store(store.clone()).unwrap());
    let mut last = first.latest().version;
    for _ in 0..VERSION_BLOCK + 10 {
        let v = first.set_bundle(Vec::new());
        assert!(v > last);
        last = v;
    }
    drop(first);
    let restarted = Hub::with_versions(false, Versions::from_store(store).unwrap());
    assert!(restarted.latest().version > last);
}

#[test]
fn a_replaced_table_publishes_only_when_a_list_changed_and_clears_what_it_no_longer_has() {
    let hub = hub();
    let sink = hub.endpoint_sink("whole tables");
    let table = |entries: &[(&str, &[&str])]| {
        entries
            .iter()
            .map(|(name, addrs)| {
                let list = addrs.iter().map(|a| endpoint(a, "bookstore")).collect();
                (service(name), list)
            })
            .collect::<std::collections::HashMap<_, Vec<_>>>()
    };
    let first = sink
        .replace(table(&[
            ("bookstore-v1", &["10.0.0.1:80"]),
            ("bookstore-v2", &["10.0.0.2:80"]),
        ]))
        .expect("a new table publishes");
    assert_eq!(hub.latest().endpoints.len(), 2);
    // The same table again: nothing new.
    let same = table(&[
        ("bookstore-v1", &["10.0.0.1:80"]),
        ("bookstore-v2", &["10.0.0.2:80"]),
    ]);
    assert_eq!(sink.replace(same), None);
    assert_eq!(hub.latest().version, first);
    // v2 gone, v1 changed: one version, v2 cleared.
    let second = sink
        .replace(table(&[("bookstore-v1", &["10.0.0.3:80"])]))
        .expect("a changed table publishes");
    assert!(second > first);
    let published = hub.latest();
    assert!(!published.endpoints.contains_key(&service("bookstore-v2")));
    assert_eq!(
        published.endpoints[&service("bookstore-v1")][0].address,
        "10.0.0.3:80".parse::<SocketAddr>().unwrap()
    );
}
