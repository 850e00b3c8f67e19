//! A **fake** Kubernetes API server, for the tests of the control's Kubernetes mode on a machine
//! with no cluster: a real HTTP server on 127.0.0.1 (not a mock inside the client) that speaks
//! the Kubernetes API's REST and watch protocol closely enough that kube-rs's own `kube::Api`,
//! `kube::runtime::watcher` and `kube::discovery::Discovery` work against it unchanged; its
//! tests hold it to that with kube-rs as the client.
//!
//! [`FakeApiServer::start`] serves plain HTTP (a real API server is HTTPS only; kube-rs takes an
//! `http://` server URL in a kubeconfig as it is), and requires the bearer token of the
//! kubeconfig it writes ([`FakeApiServer::kubeconfig`]) on every request (401 otherwise).
//!
//! # What it models
//! - Storage as etcd: JSON objects keyed by group, resource, namespace and name; one revision
//!   counter for every write (`metadata.resourceVersion`), `uid`, `creationTimestamp` and
//!   `generation` (bumped when anything but metadata and a status subresource changes) set by
//!   the server; no new revision for a write that changes nothing; the history of changes kept
//!   until [`compact`](FakeApiServer::compact).
//! - Built-in resources: core `v1` namespaces, pods, services, secrets, configmaps, events,
//!   serviceaccounts; `discovery.k8s.io/v1` endpointslices; `events.k8s.io/v1` events;
//!   `apiextensions.k8s.io/v1` customresourcedefinitions; `authentication.k8s.io/v1`
//!   tokenreviews and `authorization.k8s.io/v1` subjectaccessreviews (create only, answered
//!   from the test's tables, not stored); `apiregistration.k8s.io/v1` apiservices.
//! - CustomResourceDefinitions: creating one serves its kind in every `served` version
//!   (discovery, REST, watch); its objects are stored once and served in every served version
//!   with `apiVersion` rewritten and the body unchanged (the `None` conversion strategy); its
//!   status says `Established` at once; deleting it deletes its objects.
//! - Discovery (`/api`, `/apis`, `/apis/<g>`, `/api/v1`, `/apis/<g>/<v>`), with each group's
//!   versions in Kubernetes version priority and the highest preferred.
//! - REST: get, list (label and field selectors, `limit`/`continue` with tokens that expire at
//!   compaction, `resourceVersion`/`resourceVersionMatch`), create (409 AlreadyExists; the
//!   namespace must exist), replace (409 Conflict on a stale `resourceVersion`), merge and JSON
//!   patch, server-side apply as a merge patch that may create, delete (finalizers hold an object
//!   with a `deletionTimestamp`; deleting a namespace deletes what is in it), deletecollection,
//!   `status` subresources. Errors are `Status` objects with the real reasons and codes.
//! - Watch: `resourceVersion` replay, synthetic `ADDED` from 0, selectors on both sides of a
//!   change (an object that stops matching is `DELETED`), bookmarks, `timeoutSeconds`,
//!   `sendInitialEvents`, and 410 `Expired` as an `ERROR` event from before compaction.
//! - Defaults: Services' cluster IP, type and port defaults, Secrets' `stringData`, a new Pod's
//!   `Pending` phase, a Namespace's `Active` phase.
//!
//! # What it does not
//! No TLS, no RBAC (the one token may do everything; SubjectAccessReviews answer from
//! [`allow`](FakeApiServer::allow) rules only), no admission webhooks, no OpenAPI schema
//! validation, pruning or defaulting of custom resources, no conversion webhooks, no
//! controllers (no kubelet: pods never run and are deleted at once; no EndpointSlice
//! controller: tests write the slices; no garbage collection by owner references; no
//! `kubernetes` Service in `default`), no aggregation (an APIService is stored, not proxied to),
//! no aggregated discovery (`apidiscovery.k8s.io/v2`), no managed fields (server-side apply is a
//! merge patch: no field ownership, no conflicts), no strategic merge (a merge patch instead),
//! no `dryRun`, no protobuf, no YAML bodies, no `/api/v1/watch/...` legacy paths; the two Event
//! APIs are stored apart (the real server keeps one object in two shapes); every object has a
//! `generation`. kube-rs's client retries 503s (up to 15 times, with backoff): a test of an
//! unavailable API sets `kube::Config::default_retry = false`, or expects the retries.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use http::{Method, StatusCode};

mod builtins;
mod controls;
mod defaults;
mod discovery;
mod ids;
mod mutate;
mod patch;
mod read;
mod resources;
mod respond;
mod rest;
mod reviews;
mod routes;
mod selector;
mod server;
mod state;
mod status;
mod store;
mod watch;
mod write;

#[cfg(test)]
mod tests;

pub use reviews::{API_AUDIENCE, TokenIdentity};

use server::Running;
use state::State;

/// A fake Kubernetes API server on 127.0.0.1 (see the [module docs](self) for what it models
/// and what it does not). Stopped when dropped.
#[derive(Debug)]
pub struct FakeApiServer {
    shared: std::sync::Arc<Shared>,
    running: Mutex<Option<Running>>,
}

/// One request the fake API server answered ([`FakeApiServer::requests`]): for tests to assert
/// what the client did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: Method,
    /// Path and query, as sent.
    pub uri: String,
    pub status: StatusCode,
}

/// What the server's parts share.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Bumped after every change to the state, so watch streams and waits look again.
    pulse: tokio::sync::watch::Sender<u64>,
    token: String,
    addr: SocketAddr,
}

// === impl Shared ===

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic under the lock (a failing test) leaves the state usable for the rest.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the state.
    fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.lock())
    }

    /// Changes the state, then wakes whoever waits on it.
    fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let result = f(&mut self.lock());
        self.pulse.send_modify(|n| *n = n.wrapping_add(1));
        result
    }
}

// === impl LoggedRequest ===

impl LoggedRequest {
    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or_default()
    }

    /// The (percent-decoded) query parameter `key`.
    pub fn query(&self, key: &str) -> Option<String> {
        let query = self.uri.split_once('?').map(|(_, q)| q);
        routes::query(query).remove(key)
    }

    /// Whether this was a watch (`watch=true` or `watch=1`).
    pub fn is_watch(&self) -> bool {
        matches!(self.query("watch").as_deref(), Some("true" | "1"))
    }
}

// === impl FakeApiServer ===

impl FakeApiServer {
    /// Starts a server on 127.0.0.1 on a free port, with the namespaces every cluster has
    /// (`default`, `kube-system`, `kube-public`, `kube-node-lease`).
    pub async fn start() -> FakeApiServer {
        let listener = server::listen(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .expect("binding the fake API server to 127.0.0.1");
        let addr = listener.local_addr().expect("the listener's address");
        let shared = std::sync::Arc::new(Shared {
            state: Mutex::new(State::new()),
            pulse: tokio::sync::watch::Sender::new(0),
            token: ids::random_hex(32),
            addr,
        });
        let running = server::spawn(listener, shared.clone());
        FakeApiServer {
            shared,
            running: Mutex::new(Some(running)),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The bearer token every request needs.
    pub fn bearer_token(&self) -> &str {
        &self.shared.token
    }

    /// Writes a kubeconfig for this server into `dir` (cluster `fake` at [`url`](Self::url), a
    /// user with the [bearer token](Self::bearer_token), namespace `default`); returns its path.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("kubeconfig-{}", self.shared.addr.port()));
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\nusers:\n- name: fake-admin\n  user:\n    token: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake-admin\n    namespace: default\ncurrent-context: fake\n",
            self.url(),
            self.shared.token
        );
        std::fs::write(&path, config)
            .unwrap_or_else(|e| panic!("writing a kubeconfig to {}: {e}", path.display()));
        path
    }

    /// Stops serving: the port and every connection (open watches with them) close. The data
    /// stays, for [`start_again`](Self::start_again).
    pub async fn stop(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(running) = running {
            running.stop().await;
        }
    }

    /// Serves again on the same port, with the same data; the resourceVersion counter goes on.
    pub async fn start_again(&self) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(
            running.is_none(),
            "start_again: the fake API server is running"
        );
        let listener = server::listen(self.shared.addr).unwrap_or_else(|e| {
            panic!(
                "binding the fake API server to {} again: {e}",
                self.shared.addr
            )
        });
        *running = Some(server::spawn(listener, self.shared.clone()));
    }
}
