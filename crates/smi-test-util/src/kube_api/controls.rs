//! The test's side of the fake: write and read objects directly (as if in etcd: no admission,
//! status included), forget history, break watches, and set what the reviews answer and what
//! is unavailable. Every write is seen by watches as the API's writes are.

use std::time::Duration;

use serde_json::Value;

use super::resources::ResourceType;
use super::state::{State, served};
use super::write::Part;
use super::{FakeApiServer, LoggedRequest, TokenIdentity};

/// How long [`FakeApiServer::wait_for_watch`] waits.
const WAIT: Duration = Duration::from_secs(10);

fn resource(state: &State, api_version: &str, kind_or_plural: &str) -> ResourceType {
    let rt = state.registry.by_kind(api_version, kind_or_plural).cloned();
    rt.unwrap_or_else(|| panic!("the fake API server serves no {kind_or_plural} in {api_version}"))
}

fn version(api_version: &str) -> &str {
    api_version.rsplit('/').next().unwrap_or(api_version)
}

impl FakeApiServer {
    /// Creates or replaces `object` (its `apiVersion`, `kind`, `metadata.name`, and
    /// `metadata.namespace`, "default" if unset) as given, status included, skipping the
    /// API's checks (a stale `resourceVersion` is no conflict); returns the stored object.
    pub fn apply(&self, object: Value) -> Value {
        let api_version = object["apiVersion"]
            .as_str()
            .expect("apply: an object with apiVersion")
            .to_owned();
        let kind = object["kind"]
            .as_str()
            .expect("apply: an object with kind")
            .to_owned();
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_owned();
        self.shared.update(|s| {
            let rt = resource(s, &api_version, &kind);
            let exists = s.store.get(&State::key(&rt, &namespace, &name)).is_some();
            let stored = if exists {
                s.replace(&rt, &namespace, &name, object, Part::All)
            } else {
                s.create(&rt, &namespace, object, false)
            };
            let stored =
                stored.unwrap_or_else(|e| panic!("apply {kind} {namespace}/{name}: {}", e.message));
            served(&rt, version(&api_version), &stored)
        })
    }

    /// The object, as served in `api_version`.
    pub fn get(
        &self,
        api_version: &str,
        kind_or_plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        self.shared.read(|s| {
            let rt = resource(s, api_version, kind_or_plural);
            let object = s
                .store
                .get(&State::key(&rt, namespace.unwrap_or_default(), name))?;
            Some(served(&rt, version(api_version), object))
        })
    }

    /// The objects of a kind (in `namespace`, or all), in namespace and name order.
    pub fn list(
        &self,
        api_version: &str,
        kind_or_plural: &str,
        namespace: Option<&str>,
    ) -> Vec<Value> {
        self.shared.read(|s| {
            let rt = resource(s, api_version, kind_or_plural);
            let objects = s.store.range(&rt.group, &rt.plural, namespace);
            objects
                .map(|(_, o)| served(&rt, version(api_version), o))
                .collect()
        })
    }

    /// Deletes the object now (finalizers notwithstanding), and what it owns (a namespace's
    /// objects, a CRD's resources); returns it as it was, or `None` if there was none.
    pub fn delete(
        &self,
        api_version: &str,
        kind_or_plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        self.shared.update(|s| {
            let rt = resource(s, api_version, kind_or_plural);
            let key = State::key(&rt, namespace.unwrap_or_default(), name);
            let old = s.store.get(&key)?.clone();
            let deleted = s.remove(&rt, &key, old);
            Some(served(&rt, version(api_version), &deleted.object))
        })
    }

    /// The revision of the latest write.
    pub fn resource_version(&self) -> u64 {
        self.shared.read(|s| s.store.revision())
    }

    /// Forgets the history up to now, as etcd's compaction: watches and lists from an earlier
    /// resourceVersion, and continue tokens from before, get 410 Expired.
    pub fn compact(&self) {
        self.shared.update(|s| s.store.compact());
    }

    /// Ends every open watch stream abruptly (the connection closes mid-body); once this
    /// returns, none of them sends another event.
    pub fn break_watches(&self) {
        self.shared.update(|s| s.break_epoch += 1);
    }

    /// Makes every open watch that asked for bookmarks send one now.
    pub fn bookmark_now(&self) {
        self.shared.update(|s| s.bookmark_epoch += 1);
    }

    /// The path and query of every open watch stream.
    pub fn open_watches(&self) -> Vec<String> {
        self.shared.read(|s| s.watches.values().cloned().collect())
    }

    /// Waits until a watch whose path and query start with `prefix` is open; panics after 10 s.
    pub async fn wait_for_watch(&self, prefix: &str) {
        let mut pulse = self.shared.pulse.subscribe();
        let open = || {
            self.shared
                .read(|s| s.watches.values().any(|w| w.starts_with(prefix)))
        };
        let waited = tokio::time::timeout(WAIT, async {
            while !open() {
                if pulse.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "no watch on {prefix} opened within {WAIT:?}; open: {:?}",
            self.open_watches()
        );
    }

    /// The Events clients wrote (core `v1` and `events.k8s.io/v1`), in the order of their
    /// last write.
    pub fn events(&self) -> Vec<Value> {
        let mut events = self.list("v1", "events", None);
        events.extend(self.list("events.k8s.io/v1", "events", None));
        let revision = |e: &Value| {
            e.pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .and_then(|v| v.parse::<u64>().ok())
        };
        events.sort_by_key(revision);
        events
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.read(|s| s.requests.clone())
    }

    /// Makes `token` authenticate as `identity` in TokenReviews.
    pub fn add_token(&self, token: &str, identity: TokenIdentity) {
        self.shared
            .update(|s| s.reviews.tokens.insert(token.to_owned(), identity));
    }

    /// Allows `subject` (a user or a group) to `verb` the `resource` of `group` in
    /// SubjectAccessReviews; `"*"` matches anything in any place.
    pub fn allow(&self, subject: &str, verb: &str, group: &str, resource: &str) {
        self.shared
            .update(|s| s.reviews.allow(subject, verb, group, resource));
    }

    /// Answers every request whose path starts with `prefix` with 503 ServiceUnavailable (""
    /// for every request), or stops doing so.
    pub fn set_unavailable(&self, prefix: &str, unavailable: bool) {
        self.shared.update(|s| {
            s.unavailable.retain(|p| p != prefix);
            if unavailable {
                s.unavailable.push(prefix.to_owned());
            }
        });
    }
}
