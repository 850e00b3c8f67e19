//! [`KubePolicy`]: the SMI resources of a cluster, as a [`PolicySource`].
//!
//! Discovery decides what is watched: every kind of the SMI groups the cluster serves, in one
//! version each (the group's preferred version when it has the kind, else the newest that
//! does). One version, because the API server serves each object in every version of its CRD
//! (conversion `None` changes only `apiVersion`): watching them all would see every object
//! several times. Each kind is a [`Watched`] store; every object is one origin, named
//! `kubernetes:<Kind> <namespace>/<name>`, loaded by the same loader as a file. An object that
//! does not load gets a Warning Event (reason `InvalidPolicy`) and keeps its last good version
//! serving, as a broken file does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject};
use kube::discovery::Discovery;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::KubeError;
use super::events::{EventRecorder, ObjectRef};
use super::watched::{Watched, debounced};
use crate::traits::{Changed, Content, PolicyDocument, PolicySource, SourceError, WatchGuard};

/// The API groups whose kinds are policy.
pub const SMI_GROUPS: [&str; 3] = [
    "access.smi-spec.io",
    "specs.smi-spec.io",
    "split.smi-spec.io",
];

/// How long the first list of every kind may take at start.
const FIRST_LIST: Duration = Duration::from_secs(30);

pub struct KubePolicy {
    name: String,
    kinds: Vec<(ApiResource, Watched<DynamicObject>)>,
    /// Who to call after a change (set by `watch`).
    changed: Arc<Mutex<Option<Changed>>>,
    /// Each origin's object, for the Events of those that fail to load.
    objects: Mutex<HashMap<String, ObjectRef>>,
    events: EventRecorder,
    forward: JoinHandle<()>,
}

impl std::fmt::Debug for KubePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubePolicy")
            .field(
                "kinds",
                &self.kinds.iter().map(|(_, w)| &w.what).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Drop for KubePolicy {
    fn drop(&mut self) {
        self.forward.abort();
    }
}

impl KubePolicy {
    /// Discovers the SMI kinds the cluster serves and watches each; returns once each has been
    /// listed whole (an error if one cannot be within 30 s: a control that cannot read the
    /// policy has nothing to serve).
    pub async fn start(client: kube::Client, events: EventRecorder) -> Result<Self, KubeError> {
        let resources = smi_resources(&client).await?;
        let notify = Arc::new(Notify::new());
        let mut kinds = Vec::new();
        for resource in resources {
            let what = format!("{} {}", resource.kind, resource.api_version);
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            let watched = Watched::start_with(api, resource.clone(), what, notify.clone());
            kinds.push((resource, watched));
        }
        if kinds.is_empty() {
            tracing::warn!(
                "the cluster serves no SMI kinds: apply the CRDs (`smictl crds | kubectl apply -f -`) and restart the control"
            );
        }
        for (_, watched) in &kinds {
            watched.ready(FIRST_LIST).await?;
        }
        tracing::info!(kinds = ?kinds.iter().map(|(_, w)| w.what.as_str()).collect::<Vec<_>>(), "watching SMI policy in the cluster");
        let changed: Arc<Mutex<Option<Changed>>> = Arc::default();
        let forward = {
            let changed = changed.clone();
            debounced(notify, move || {
                let callback = changed.lock().unwrap_or_else(|e| e.into_inner()).clone();
                if let Some(callback) = callback {
                    callback();
                }
            })
        };
        Ok(Self {
            name: "kubernetes".to_owned(),
            kinds,
            changed,
            objects: Mutex::default(),
            events,
            forward,
        })
    }
}

/// The SMI kinds the cluster serves, one version each (see the module).
pub async fn smi_resources(client: &kube::Client) -> Result<Vec<ApiResource>, KubeError> {
    let discovery = Discovery::new(client.clone())
        .filter(&SMI_GROUPS)
        .run()
        .await
        .map_err(|e| KubeError::Api(format!("discovery of the SMI groups: {e}")))?;
    Ok(discovery
        .groups()
        .flat_map(|group| group.recommended_resources())
        .map(|(resource, _)| resource)
        .collect())
}

/// Every SMI resource the cluster serves, listed once: what `smictl check --kubernetes` reads.
pub async fn list_documents(client: &kube::Client) -> Result<Vec<PolicyDocument>, KubeError> {
    let mut documents = Vec::new();
    for resource in smi_resources(client).await? {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let list = api
            .list(&kube::api::ListParams::default())
            .await
            .map_err(|e| KubeError::Api(format!("listing {}: {e}", resource.kind)))?;
        documents.extend(list.items.iter().map(|o| document(&resource, o).0));
    }
    documents.sort_by(|a, b| a.origin.cmp(&b.origin));
    Ok(documents)
}

/// One object as a policy document (with its kind and version, which list items may leave
/// out), named `kubernetes:<Kind> <namespace>/<name>`, and the object for its Events.
fn document(resource: &ApiResource, object: &DynamicObject) -> (PolicyDocument, ObjectRef) {
    let namespace = object.metadata.namespace.clone().unwrap_or_default();
    let name = object.metadata.name.clone().unwrap_or_default();
    let origin = format!("kubernetes:{} {namespace}/{name}", resource.kind);
    let content = match serde_json::to_value(object) {
        Ok(mut value) => {
            value["apiVersion"] = resource.api_version.clone().into();
            value["kind"] = resource.kind.clone().into();
            Content::Value(value)
        }
        Err(e) => Content::Unreadable(format!("not JSON: {e}")),
    };
    let object = ObjectRef {
        api_version: resource.api_version.clone(),
        kind: resource.kind.clone(),
        namespace,
        name,
        uid: object.metadata.uid.clone(),
    };
    (PolicyDocument { origin, content }, object)
}

impl PolicySource for KubePolicy {
    fn name(&self) -> &str {
        &self.name
    }

    /// Every object of every watched kind, in origin order, as the API server returned it
    /// (with its kind and version, which list items may leave out).
    fn documents(&self) -> Result<Vec<PolicyDocument>, SourceError> {
        let mut documents = Vec::new();
        let mut objects = HashMap::new();
        for (resource, watched) in &self.kinds {
            for object in watched.store.state() {
                let (document, object) = document(resource, &object);
                objects.insert(document.origin.clone(), object);
                documents.push(document);
            }
        }
        documents.sort_by(|a, b| a.origin.cmp(&b.origin));
        *self.objects.lock().unwrap_or_else(|e| e.into_inner()) = objects;
        Ok(documents)
    }

    fn watch(&self, changed: Changed) -> Result<WatchGuard, SourceError> {
        *self.changed.lock().unwrap_or_else(|e| e.into_inner()) = Some(changed);
        Ok(WatchGuard::new(Unwatch(self.changed.clone())))
    }

    /// A Warning Event on each object that does not load (once per distinct error).
    fn loaded(&self, failing: &[(String, Vec<String>)]) {
        let objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        let failing: Vec<(ObjectRef, String)> = failing
            .iter()
            .filter_map(|(origin, errors)| {
                objects
                    .get(origin)
                    .map(|object| (object.clone(), errors.join("; ")))
            })
            .collect();
        drop(objects);
        self.events.invalid_policy(failing);
    }
}

/// Stops the calls when dropped.
struct Unwatch(Arc<Mutex<Option<Changed>>>);

impl Drop for Unwatch {
    fn drop(&mut self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
