//! One kind of object, watched: kube-rs's `watcher` (list, then watch from the list's
//! resourceVersion, bookmarks, a relist on `410 Gone`, backoff while the API server is away)
//! feeding a reflector store, and a wake-up for whoever reads the store after each change.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kube::Resource;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::KubeError;

/// The store of one kind, kept by its watcher task (stopped when this is dropped).
pub(super) struct Watched<K: Resource + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    pub store: Store<K>,
    /// What is watched, for logs and errors (`TrafficSplit split.smi-spec.io/v1alpha4`).
    pub what: String,
    task: JoinHandle<()>,
}

impl<K: Resource + 'static> Drop for Watched<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<K> Watched<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Default + Send + Sync,
{
    /// [`Watched::start_with`] for a kind whose type says what it is.
    pub fn start(api: Api<K>, what: String, changed: Arc<Notify>) -> Self {
        Self::start_with(api, K::DynamicType::default(), what, changed)
    }
}

impl<K> Watched<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
{
    /// Starts watching `api`; `changed` is notified after every change the store takes (and
    /// once it holds the first complete list).
    pub fn start_with(
        api: Api<K>,
        dyntype: K::DynamicType,
        what: String,
        changed: Arc<Notify>,
    ) -> Self {
        let writer = Writer::new(dyntype);
        let store = writer.as_reader();
        let stream =
            reflector::reflector(writer, watcher::watcher(api, watcher::Config::default()))
                .default_backoff();
        let name = what.clone();
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            let mut failing = false;
            while let Some(event) = stream.next().await {
                match event {
                    Ok(Event::Apply(_) | Event::Delete(_) | Event::InitDone) => {
                        if failing {
                            tracing::info!(watch = name, "Kubernetes watch recovered");
                            failing = false;
                        }
                        changed.notify_one();
                    }
                    Ok(Event::Init | Event::InitApply(_)) => {}
                    Err(e) => {
                        // The store keeps what it has; the watcher lists again once it can.
                        if !failing {
                            tracing::warn!(watch = name, error = %e, "Kubernetes watch failed; serving what was seen last and retrying");
                        }
                        failing = true;
                    }
                }
            }
        });
        Self { store, what, task }
    }

    /// Waits until the store holds its first complete list.
    pub async fn ready(&self, timeout: Duration) -> Result<(), KubeError> {
        match tokio::time::timeout(timeout, self.store.wait_until_ready()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(KubeError::Api(format!("{}: the watch ended", self.what))),
            Err(_) => Err(KubeError::Api(format!(
                "{}: no complete list within {timeout:?} (is the API server reachable, and may this ServiceAccount list it?)",
                self.what
            ))),
        }
    }
}

/// Calls `changed` on a blocking thread after each burst of notifications on `notify` (20 ms
/// of quiet, or 200 ms into a burst that goes on), until the returned task is aborted.
pub(super) fn debounced(
    notify: Arc<Notify>,
    changed: impl Fn() + Send + Sync + 'static,
) -> JoinHandle<()> {
    let changed = Arc::new(changed);
    tokio::spawn(async move {
        loop {
            notify.notified().await;
            // A burst (a relist, a batch of slices) settles into one reload.
            let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
            while tokio::time::Instant::now() < deadline
                && tokio::time::timeout(Duration::from_millis(20), notify.notified())
                    .await
                    .is_ok()
            {}
            let changed = changed.clone();
            let _ = tokio::task::spawn_blocking(move || changed()).await;
        }
    })
}
