//! Everything the server knows, behind one lock: the store, what it serves, the reviews' rules,
//! the request log and the test's switches. Never held across an `.await`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::reviews::Reviews;
use super::store::{Key, Store};
use super::{LoggedRequest, resources::Registry, resources::ResourceType};

/// The namespaces every cluster has.
const NAMESPACES: [&str; 4] = ["default", "kube-node-lease", "kube-public", "kube-system"];

#[derive(Debug)]
pub(super) struct State {
    pub store: Store,
    pub registry: Registry,
    pub reviews: Reviews,
    pub requests: Vec<LoggedRequest>,
    /// Path prefixes answered with 503.
    pub unavailable: Vec<String>,
    /// Bumped by `break_watches`: streams opened in an earlier epoch end abruptly.
    pub break_epoch: u64,
    /// Bumped by `bookmark_now`: streams that asked for bookmarks send one.
    pub bookmark_epoch: u64,
    /// Open watch streams: id to the path and query they were opened with.
    pub watches: BTreeMap<u64, String>,
    pub next_watch: u64,
    /// The next Service cluster IP to hand out, as an offset in 10.96.0.0/12.
    pub next_ip: u32,
}

// === impl State ===

impl State {
    pub fn new() -> State {
        let mut state = State {
            store: Store::default(),
            registry: Registry::new([]),
            reviews: Reviews::default(),
            requests: Vec::new(),
            unavailable: Vec::new(),
            break_epoch: 0,
            bookmark_epoch: 0,
            watches: BTreeMap::new(),
            next_watch: 0,
            next_ip: 10,
        };
        let namespaces = state
            .registry
            .resource("", "namespaces")
            .cloned()
            .expect("namespaces are built in");
        for name in NAMESPACES {
            let namespace = serde_json::json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name},
            });
            state
                .create(&namespaces, "", namespace, false)
                .expect("the built-in namespaces are valid");
        }
        state
    }

    /// Rebuilds what is served after a CustomResourceDefinition was written.
    pub fn refresh_registry(&mut self) {
        let crds = self
            .store
            .range("apiextensions.k8s.io", "customresourcedefinitions", None)
            .map(|(_, crd)| crd);
        self.registry = Registry::new(crds);
    }

    pub fn key(rt: &ResourceType, namespace: &str, name: &str) -> Key {
        let namespace = if rt.namespaced { namespace } else { "" };
        Key::new(&rt.group, &rt.plural, namespace, name)
    }
}

/// `object` as served in `version` of its resource: `apiVersion` rewritten (custom resources are
/// stored once and served in every served version with the body unchanged: the `None`
/// conversion strategy) and `kind` set.
pub(super) fn served(rt: &ResourceType, version: &str, object: &Value) -> Value {
    let mut object = object.clone();
    object["apiVersion"] = Value::String(rt.api_version(version));
    object["kind"] = Value::String(rt.kind.clone());
    object
}
