//! [`EventRecorder`]: Kubernetes Events from the control, on the objects they concern: a
//! policy resource that does not load gets a Warning (`InvalidPolicy`) naming the field, seen
//! with `kubectl describe` and `kubectl get events`. Each distinct error is reported once; an
//! object that loads again is forgotten, so that a new error is reported again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, PostParams};
use tokio::runtime::Handle;

/// The object an Event is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
}

/// The longest message an Event carries (the API server refuses more than 1 KiB in
/// `events.k8s.io`; core Events take more, but `kubectl` shows one line).
const MAX_MESSAGE: usize = 1_000;

#[derive(Clone)]
pub struct EventRecorder {
    client: kube::Client,
    runtime: Handle,
    /// What was reported for each object that is failing now.
    reported: Arc<Mutex<HashMap<ObjectRef, String>>>,
    /// Posts in flight: a namespace full of broken objects makes a bounded number of requests
    /// at a time, each bounded in time.
    posting: Arc<tokio::sync::Semaphore>,
}

/// Event posts in flight at once.
const POSTS_IN_FLIGHT: usize = 4;
/// How long one post may take.
const POST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl std::fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventRecorder")
    }
}

impl EventRecorder {
    /// Posts through `client`, on the runtime this is made in.
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            runtime: Handle::current(),
            reported: Arc::default(),
            posting: Arc::new(tokio::sync::Semaphore::new(POSTS_IN_FLIGHT)),
        }
    }

    /// `failing` is every object that does not load now, with its errors: each one not yet
    /// reported with these errors gets an Event; the others are forgotten.
    pub fn invalid_policy(&self, failing: Vec<(ObjectRef, String)>) {
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        let now: HashMap<ObjectRef, String> = failing.into_iter().collect();
        reported.retain(|object, _| now.contains_key(object));
        for (object, message) in now {
            if reported.get(&object) == Some(&message) {
                continue;
            }
            reported.insert(object.clone(), message.clone());
            let (client, posting) = (self.client.clone(), self.posting.clone());
            self.runtime.spawn(async move {
                let Ok(_permit) = posting.acquire().await else {
                    return;
                };
                match tokio::time::timeout(POST_TIMEOUT, post(client, &object, &message)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(kind = object.kind, namespace = object.namespace, name = object.name, error = %e, "cannot post the Event of an invalid policy resource"),
                    Err(_) => tracing::warn!(kind = object.kind, namespace = object.namespace, name = object.name, "the Event of an invalid policy resource was not posted within 5 s"),
                }
            });
        }
    }
}

async fn post(client: kube::Client, object: &ObjectRef, message: &str) -> Result<(), kube::Error> {
    let mut message = message.to_owned();
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...");
    }
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let event = Event {
        metadata: ObjectMeta {
            name: Some(format!("{}.{:016x}", object.name, rand::random::<u64>())),
            namespace: Some(object.namespace.clone()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some(object.api_version.clone()),
            kind: Some(object.kind.clone()),
            name: Some(object.name.clone()),
            namespace: Some(object.namespace.clone()),
            uid: object.uid.clone(),
            ..ObjectReference::default()
        },
        reason: Some("InvalidPolicy".to_owned()),
        message: Some(message),
        type_: Some("Warning".to_owned()),
        source: Some(EventSource {
            component: Some("smi-control".to_owned()),
            host: None,
        }),
        reporting_component: Some("smi-control".to_owned()),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        ..Event::default()
    };
    Api::<Event>::namespaced(client, &object.namespace)
        .create(&PostParams::default(), &event)
        .await
        .map(|_| ())
}
