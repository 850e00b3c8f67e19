//! The fake held to the protocol by kube-rs as the client: real HTTP on 127.0.0.1, kube's own
//! `Api`, `watcher` and `Discovery`. No test sleeps: each waits on what it expects, with a
//! timeout.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{Stream, StreamExt as _};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::FakeApiServer;

mod discovery;
mod kinds;
mod lists;
mod rest;
mod reviews;
mod watch;
mod wire;

/// How long a test waits for what it expects.
const WAIT: Duration = Duration::from_secs(10);

/// The `Status` of a refused request.
pub(super) fn api_error(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(status) => status,
        other => panic!("expected an API error (a Status), got {other:?}"),
    }
}

/// A kube-rs client for `server`, configured from the kubeconfig the server writes.
async fn client(server: &FakeApiServer) -> kube::Client {
    kube::Client::try_from(config(server).await).expect("a kube client")
}

async fn config(server: &FakeApiServer) -> kube::Config {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = server.kubeconfig(dir.path());
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("the kubeconfig parses");
    let options = kube::config::KubeConfigOptions::default();
    kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("a config from the kubeconfig")
}

/// The SMI TrafficSplit CRD, served in `versions` (the first is the storage version).
fn traffic_split_crd(versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            json!({"name": v, "served": true, "storage": i == 0,
                   "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}})
        })
        .collect();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "trafficsplits.split.smi-spec.io"},
        "spec": {
            "group": "split.smi-spec.io",
            "scope": "Namespaced",
            "names": {"plural": "trafficsplits", "singular": "trafficsplit", "kind": "TrafficSplit", "shortNames": ["ts"]},
            "versions": versions,
        },
    })
}

fn traffic_split_resource(version: &str) -> ApiResource {
    let gvk = GroupVersionKind::gvk("split.smi-spec.io", version, "TrafficSplit");
    ApiResource::from_gvk_with_plural(&gvk, "trafficsplits")
}

fn traffic_split(version: &str, name: &str, weight: u32) -> Value {
    json!({
        "apiVersion": format!("split.smi-spec.io/{version}"),
        "kind": "TrafficSplit",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"service": "web", "backends": [{"service": "web-v1", "weight": weight}]},
    })
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

/// A watcher's retry policy for tests: again after 20 ms, every time.
struct Quick;

impl Iterator for Quick {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        Some(Duration::from_millis(20))
    }
}

impl kube::runtime::utils::Backoff for Quick {
    fn reset(&mut self) {}
}

type Event = Result<watcher::Event<DynamicObject>, watcher::Error>;

/// What a `kube::runtime::watcher` says there is, kept as a reflector would: name to spec,
/// replaced whole at each `InitDone`. The watcher runs in a task of its own (so that it
/// reconnects while the test waits on the server), which ends with the mirror.
struct Mirror {
    events: tokio::sync::mpsc::UnboundedReceiver<Event>,
    task: tokio::task::JoinHandle<()>,
    objects: BTreeMap<String, Value>,
    relisting: Option<BTreeMap<String, Value>>,
    /// `InitDone`s: the initial list, then one per relist.
    lists: usize,
    /// Watch errors the server sent (410 Expired among them).
    expired: usize,
    /// Every event and error, in order, for failure messages.
    log: Vec<String>,
}

impl Mirror {
    fn new(api: kube::Api<DynamicObject>) -> Mirror {
        Mirror::with_config(api, watcher::Config::default())
    }

    fn with_config(api: kube::Api<DynamicObject>, config: watcher::Config) -> Mirror {
        use kube::runtime::WatchStreamExt as _;
        let mut watcher = Box::pin(watcher(api, config).backoff(Quick));
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Some(event) = watcher.next().await {
                if tx.send(event).is_err() {
                    return;
                }
            }
        });
        Mirror {
            events,
            task,
            objects: BTreeMap::new(),
            relisting: None,
            lists: 0,
            expired: 0,
            log: Vec::new(),
        }
    }

    fn name_and_spec(o: &DynamicObject) -> (String, Value) {
        (
            o.metadata.name.clone().unwrap_or_default(),
            o.data["spec"].clone(),
        )
    }

    fn take(&mut self, event: Event) {
        match event {
            Ok(watcher::Event::Init) => self.relisting = Some(BTreeMap::new()),
            Ok(watcher::Event::InitApply(o)) => {
                let (name, spec) = Self::name_and_spec(&o);
                self.log.push(format!("InitApply {name}"));
                self.relisting.get_or_insert_default().insert(name, spec);
            }
            Ok(watcher::Event::InitDone) => {
                self.log.push("InitDone".into());
                self.objects = self.relisting.take().unwrap_or_default();
                self.lists += 1;
            }
            Ok(watcher::Event::Apply(o)) => {
                let (name, spec) = Self::name_and_spec(&o);
                self.log.push(format!("Apply {name}"));
                self.objects.insert(name, spec);
            }
            Ok(watcher::Event::Delete(o)) => {
                let (name, _) = Self::name_and_spec(&o);
                self.log.push(format!("Delete {name}"));
                self.objects.remove(&name);
            }
            Err(watcher::Error::WatchError(status)) => {
                self.log
                    .push(format!("WatchError {} {}", status.code, status.reason));
                if status.code == 410 {
                    self.expired += 1;
                }
            }
            Err(e) => self.log.push(format!("error: {e}")),
        }
    }

    /// Takes events until `done` holds; panics after 10 s.
    async fn until(&mut self, what: &str, done: impl Fn(&Mirror) -> bool) {
        let waited = tokio::time::timeout(WAIT, async {
            while !done(self) {
                match self.events.recv().await {
                    Some(event) => self.take(event),
                    None => panic!("the watcher ended"),
                }
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "waiting for {what}: have {:?} after {:?}",
            self.objects,
            self.log
        );
    }

    fn names(&self) -> Vec<&str> {
        self.objects.keys().map(String::as_str).collect()
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The next item of `stream`, within 10 s.
async fn next<S: Stream + Unpin>(stream: &mut S, what: &str) -> Option<S::Item> {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .unwrap_or_else(|_| panic!("waiting for {what}"))
}

/// The next event of a raw watch that is not a bookmark, within 10 s.
async fn next_change<K, S>(
    stream: &mut S,
    what: &str,
) -> Option<kube::Result<kube::api::WatchEvent<K>>>
where
    S: Stream<Item = kube::Result<kube::api::WatchEvent<K>>> + Unpin,
{
    loop {
        match next(stream, what).await {
            Some(Ok(kube::api::WatchEvent::Bookmark(_))) => continue,
            other => return other,
        }
    }
}
