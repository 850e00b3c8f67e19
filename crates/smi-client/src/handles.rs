//! Small handles on what the data-plane layers read per request, handed out by a [`Mesh`] (or,
//! with the `test-util` feature, made from a fixed policy and credentials, see
//! [`crate::test_util`]):
//!
//! - [`PolicyHandle`]: the current compiled policy and endpoints, our identity, and a signal
//!   when they change.
//! - [`TlsHandle`]: the current client and server TLS configurations (swapped on renewal).
//! - [`Metrics`]: where requests are recorded.
//! - [`StatusHandle`]: what the workload reports about itself (its admin endpoint's `/status`).
//! - [`TraceHandle`]: where spans go, if anywhere.
//!
//! Every read is an `ArcSwap` load: no lock, no allocation.
//!
//! [`Mesh`]: crate::Mesh

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use rustls::{ClientConfig, ServerConfig};
use smi_core::SpiffeId;
use tokio::sync::watch;

use crate::mesh::{MeshStatus, PolicyState};
use crate::metrics::Metrics;
use crate::trace::TraceHandle;

/// The current policy and endpoints, and who we are. Cheap to clone; clones see the same
/// policy.
#[derive(Clone, Debug)]
pub struct PolicyHandle(Arc<PolicyShared>);

#[derive(Debug)]
struct PolicyShared {
    identity: SpiffeId,
    /// `identity` as text, made once (it labels every metric).
    identity_text: Arc<str>,
    state: ArcSwap<PolicyState>,
    /// The version of the state last stored.
    changes: watch::Sender<u64>,
}

impl PolicyHandle {
    pub(crate) fn new(identity: SpiffeId, state: PolicyState) -> Self {
        let (changes, _) = watch::channel(state.version);
        Self(Arc::new(PolicyShared {
            identity_text: identity.to_string().into(),
            identity,
            state: ArcSwap::from_pointee(state),
            changes,
        }))
    }

    /// This workload's SPIFFE ID.
    pub fn identity(&self) -> &SpiffeId {
        &self.0.identity
    }

    /// This workload's SPIFFE ID as text, shared.
    pub fn identity_text(&self) -> &Arc<str> {
        &self.0.identity_text
    }

    /// The current policy and endpoints (a lock-free load).
    pub fn load(&self) -> Guard<Arc<PolicyState>> {
        self.0.state.load()
    }

    /// The current policy, owned (for holding across `.await`).
    pub fn load_full(&self) -> Arc<PolicyState> {
        self.0.state.load_full()
    }

    /// The policy version, changing with each applied update.
    pub fn changed(&self) -> watch::Receiver<u64> {
        self.0.changes.subscribe()
    }

    /// Replaces the policy and tells everyone waiting on [`PolicyHandle::changed`].
    pub(crate) fn store(&self, state: PolicyState) {
        let version = state.version;
        self.0.state.store(Arc::new(state));
        self.0.changes.send_replace(version);
    }
}

/// The TLS configurations made from the current certificate and trust bundle.
#[derive(Clone, Debug)]
pub struct TlsHandle(Arc<TlsShared>);

#[derive(Debug)]
struct TlsShared {
    client: ArcSwap<ClientConfig>,
    server: Arc<ArcSwap<ServerConfig>>,
}

impl TlsHandle {
    pub fn new(client: ClientConfig, server: ServerConfig) -> Self {
        Self(Arc::new(TlsShared {
            client: ArcSwap::from_pointee(client),
            server: Arc::new(ArcSwap::from_pointee(server)),
        }))
    }

    /// TLS for outbound connections, current at the time of the call.
    pub fn client(&self) -> Arc<ClientConfig> {
        self.0.client.load_full()
    }

    /// TLS for inbound connections; swapped in place when the certificate or bundle changes
    /// (listeners keep it and load it per handshake).
    pub fn server(&self) -> Arc<ArcSwap<ServerConfig>> {
        self.0.server.clone()
    }

    pub(crate) fn store(&self, client: ClientConfig, server: ServerConfig) {
        self.0.client.store(Arc::new(client));
        self.0.server.store(Arc::new(server));
    }
}

/// How to read the workload's [`MeshStatus`] now.
#[derive(Clone)]
pub struct StatusHandle(Arc<dyn Fn() -> MeshStatus + Send + Sync>);

impl StatusHandle {
    pub fn new(status: impl Fn() -> MeshStatus + Send + Sync + 'static) -> Self {
        Self(Arc::new(status))
    }

    pub fn get(&self) -> MeshStatus {
        (self.0)()
    }
}

impl std::fmt::Debug for StatusHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StatusHandle").field(&self.get()).finish()
    }
}

/// Keeps a mesh's background work (renewal, the policy watch) running while it lives: every
/// layer made from [`Handles`] holds one, so a `Mesh` moved into a layer keeps updating it, as
/// when the layer held the `Mesh` itself. Empty for handles made without a mesh.
#[derive(Clone, Debug, Default)]
pub struct KeepAlive {
    /// Held, never read: dropping the last one is what stops the mesh.
    _owner: Option<Arc<dyn std::fmt::Debug + Send + Sync>>,
}

/// Everything the inbound and outbound layers need, in one value: `AuthorizeLayer::new`,
/// `MeshClient::new`, `serve` and `serve_tcp` take `impl Into<Handles>`, so a `&Mesh` (or a
/// `Mesh`) can be passed as it is. Handles from a `Mesh` keep its background work (renewal,
/// the policy watch) running, as a `Mesh` clone would ([`KeepAlive`]).
#[derive(Clone, Debug)]
pub struct Handles {
    pub policy: PolicyHandle,
    pub tls: TlsHandle,
    pub metrics: Metrics,
    pub status: StatusHandle,
    /// Where spans go (none by default: no spans, see [`crate::trace`]).
    pub trace: TraceHandle,
    /// The mesh's tasks, when the handles are a mesh's.
    pub keep_alive: KeepAlive,
}

impl Handles {
    /// Handles on their own: nothing updates them but their owner.
    pub fn new(
        policy: PolicyHandle,
        tls: TlsHandle,
        metrics: Metrics,
        status: StatusHandle,
    ) -> Self {
        Self {
            policy,
            tls,
            metrics,
            status,
            trace: TraceHandle::default(),
            keep_alive: KeepAlive::default(),
        }
    }

    /// The same handles, recording spans to `trace`'s sink.
    #[must_use]
    pub fn with_trace(mut self, trace: TraceHandle) -> Self {
        self.trace = trace;
        self
    }

    /// Handles that keep `owner` alive while any clone of them lives.
    pub(crate) fn owned_by(mut self, owner: Arc<dyn std::fmt::Debug + Send + Sync>) -> Self {
        self.keep_alive = KeepAlive {
            _owner: Some(owner),
        };
        self
    }
}

impl From<&Handles> for Handles {
    fn from(handles: &Handles) -> Handles {
        handles.clone()
    }
}
