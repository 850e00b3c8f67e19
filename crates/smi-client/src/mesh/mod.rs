//! [`Mesh`]: one per process, shared by the outbound client and the inbound server.
//!
//! It enrolls with the control service (the key is made here), renews the certificate at about
//! 70% of its lifetime, and keeps a Watch stream open for policy, endpoints and the trust bundle.
//! Everything a request needs is behind `ArcSwap`: per-request reads take no lock. When the
//! control is unreachable the workload keeps its last policy and certificate and reconnects with
//! jittered backoff.

mod assemble;
mod backoff;
mod register;
mod renew;
mod state;
mod watch;

pub use register::Registration;
pub use state::{Endpoint, PolicyState, ServiceEndpoints};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, Guard};
use rustls::{ClientConfig, ServerConfig};
use smi_core::SpiffeId;
use smi_tls::TlsError;
use tokio::sync::watch as signal;
use tokio::task::JoinHandle;

use crate::control::{ClientError, ControlAddr, Credentials, enroll};
use crate::handles::{Handles, PolicyHandle, StatusHandle, TlsHandle};
use crate::metrics::Metrics;

/// How a workload reaches the control service, and what it subscribes to.
#[derive(Clone, Debug)]
pub struct MeshConfig {
    pub control: ControlAddr,
    pub token: String,
    /// Services this workload calls (`ns/name`), or `*` for all: their splits and endpoints are
    /// sent to it.
    pub calls: Vec<String>,
    /// A name for this instance in the control's admin views (e.g. the pod name).
    pub workload: String,
    /// How long [`Mesh::start`] waits for the first policy.
    pub ready_timeout: Duration,
}

impl MeshConfig {
    pub fn new(control: ControlAddr, token: impl Into<String>) -> Self {
        Self {
            control,
            token: token.into(),
            calls: vec!["*".to_owned()],
            workload: std::process::id().to_string(),
            ready_timeout: Duration::from_secs(10),
        }
    }

    /// From `SMI_CONTROL_ADDR` and `SMI_TOKEN` (or `SMI_TOKEN_FILE`); `SMI_CALLS` is an optional
    /// comma-separated list of services (default `*`), `SMI_WORKLOAD` an optional name.
    pub fn from_env() -> Result<Self, MeshError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let addr = var("SMI_CONTROL_ADDR").ok_or(MeshError::Env("SMI_CONTROL_ADDR is not set"))?;
        let token = match (var("SMI_TOKEN"), var("SMI_TOKEN_FILE")) {
            (Some(token), _) => token,
            (None, Some(path)) => std::fs::read_to_string(&path)
                .map_err(|e| MeshError::TokenFile(path, e))?
                .trim()
                .to_owned(),
            (None, None) => return Err(MeshError::Env("set SMI_TOKEN or SMI_TOKEN_FILE")),
        };
        let mut config = Self::new(ControlAddr::parse(&addr)?, token);
        if let Some(calls) = var("SMI_CALLS") {
            config.calls = calls.split(',').map(|s| s.trim().to_owned()).collect();
        }
        if let Some(workload) = var("SMI_WORKLOAD") {
            config.workload = workload;
        }
        Ok(config)
    }

    pub fn calls<I: IntoIterator<Item = S>, S: Into<String>>(mut self, services: I) -> Self {
        self.calls = services.into_iter().map(Into::into).collect();
        self
    }

    pub fn workload(mut self, name: impl Into<String>) -> Self {
        self.workload = name.into();
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("{0}")]
    Env(&'static str),
    #[error("reading the join token from {0}: {1}")]
    TokenFile(String, std::io::Error),
    #[error(transparent)]
    Control(#[from] ClientError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("no policy from the control service within {0:?}")]
    NotReady(Duration),
}

/// What a workload reports about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshStatus {
    /// A certificate and a first policy are in place.
    pub ready: bool,
    pub policy_version: u64,
    pub certificate_expires: SystemTime,
    /// The Watch stream is open.
    pub connected: bool,
    /// Watch streams that failed in a row since an update last arrived (0 when healthy). A
    /// count that keeps growing means this workload is not receiving policy changes.
    pub watch_failures: u32,
    /// Why the last Watch stream failed, while `watch_failures` > 0.
    pub last_watch_error: Option<String>,
}

/// The workload's handle on the mesh. Cheap to clone; background work stops when the last clone
/// is dropped.
#[derive(Clone, Debug)]
pub struct Mesh {
    inner: Arc<Inner>,
    _tasks: Arc<Tasks>,
}

#[derive(Debug)]
struct Inner {
    config: MeshConfig,
    credentials: ArcSwap<Credentials>,
    /// What the data-plane layers read: [`Mesh::handles`] hands out clones.
    policy: PolicyHandle,
    tls: TlsHandle,
    metrics: Metrics,
    /// Counts status changes: a certificate replaced, the Watch stream opened or lost.
    status_changes: signal::Sender<u64>,
    connected: AtomicBool,
    watch_health: std::sync::Mutex<WatchHealth>,
}

/// How the Watch stream fares: failures in a row, and the last one's reason.
#[derive(Clone, Debug, Default)]
struct WatchHealth {
    failures: u32,
    last_error: Option<String>,
}

#[derive(Debug)]
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl Mesh {
    /// Enrolls, starts renewal and the policy watch, and waits for the first policy.
    pub async fn start(config: MeshConfig) -> Result<Mesh, MeshError> {
        let credentials = enroll(&config.control, &config.token).await?;
        let identity = credentials.spiffe_id().clone();
        let (status_changes, _) = signal::channel(0);
        let inner = Arc::new(Inner {
            tls: TlsHandle::new(credentials.client_config()?, credentials.server_config()?),
            credentials: ArcSwap::from_pointee(credentials),
            policy: PolicyHandle::new(identity.clone(), PolicyState::empty(&identity.trust_domain)),
            config,
            status_changes,
            connected: AtomicBool::new(false),
            watch_health: std::sync::Mutex::default(),
            metrics: Metrics::new(),
        });
        let tasks = Tasks(vec![
            tokio::spawn(watch::run(inner.clone())),
            tokio::spawn(renew::run(inner.clone())),
        ]);
        let mesh = Mesh {
            inner,
            _tasks: Arc::new(tasks),
        };
        let timeout = mesh.inner.config.ready_timeout;
        tokio::time::timeout(timeout, mesh.changed().wait_for(|v| *v > 0))
            .await
            .map_err(|_| MeshError::NotReady(timeout))?
            .map_err(|_| MeshError::NotReady(timeout))?;
        Ok(mesh)
    }

    /// What the inbound and outbound layers need (policy, TLS, metrics), as small handles.
    /// They keep the mesh's background work running while they live, as a clone would.
    pub fn handles(&self) -> Handles {
        let inner = self.inner.clone();
        Handles::new(
            self.inner.policy.clone(),
            self.inner.tls.clone(),
            self.inner.metrics.clone(),
            StatusHandle::new(move || inner.status()),
        )
        .owned_by(self._tasks.clone())
    }

    /// The current policy, our identity and the change signal.
    pub fn policy_handle(&self) -> &PolicyHandle {
        &self.inner.policy
    }

    /// This workload's SPIFFE ID.
    pub fn identity(&self) -> &SpiffeId {
        self.inner.policy.identity()
    }

    /// This workload's SPIFFE ID as text, shared (it labels every metric).
    pub fn identity_text(&self) -> Arc<str> {
        self.inner.policy.identity_text().clone()
    }

    /// Request metrics of this process (both directions); `metrics().prometheus()` renders them.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The current policy and endpoints (a lock-free load).
    pub fn policy(&self) -> Guard<Arc<PolicyState>> {
        self.inner.policy.load()
    }

    /// The current policy, owned (for holding across `.await`).
    pub fn policy_full(&self) -> Arc<PolicyState> {
        self.inner.policy.load_full()
    }

    /// The policy version, changing with each applied update.
    pub fn changed(&self) -> signal::Receiver<u64> {
        self.inner.policy.changed()
    }

    /// The current credentials (certificate chain, bundle; the key stays in this process).
    pub fn credentials(&self) -> Arc<Credentials> {
        self.inner.credentials.load_full()
    }

    /// TLS for outbound connections, current at the time of the call.
    pub fn client_tls(&self) -> Arc<ClientConfig> {
        self.inner.tls.client()
    }

    /// TLS for inbound connections; swapped in place when the certificate or bundle changes.
    pub fn server_tls(&self) -> Arc<ArcSwap<ServerConfig>> {
        self.inner.tls.server()
    }

    /// Bumped whenever [`Mesh::status`] may have changed: the certificate was replaced (renewal,
    /// new bundle), or the Watch stream opened or was lost.
    pub fn status_changed(&self) -> signal::Receiver<u64> {
        self.inner.status_changes.subscribe()
    }

    pub fn status(&self) -> MeshStatus {
        self.inner.status()
    }

    /// Registers `addr` as an endpoint of `service` (`ns/name`) for as long as the returned
    /// guard lives; re-registers after reconnecting.
    pub fn register(&self, service: &str, addr: std::net::SocketAddr) -> Registration {
        register::start(self.inner.clone(), service.to_owned(), addr)
    }
}

impl From<&Mesh> for Handles {
    fn from(mesh: &Mesh) -> Handles {
        mesh.handles()
    }
}

impl From<Mesh> for Handles {
    fn from(mesh: Mesh) -> Handles {
        mesh.handles()
    }
}

impl Inner {
    fn status(&self) -> MeshStatus {
        let policy = self.policy.load();
        let health = self.watch_health().clone();
        MeshStatus {
            ready: policy.version > 0,
            policy_version: policy.version,
            certificate_expires: self.credentials.load().not_after(),
            connected: self.connected.load(Ordering::Relaxed),
            watch_failures: health.failures,
            last_watch_error: health.last_error,
        }
    }

    /// Records whether the Watch stream is open.
    fn watch_health(&self) -> std::sync::MutexGuard<'_, WatchHealth> {
        self.watch_health.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn watch_failed(&self, error: String) {
        let mut health = self.watch_health();
        health.failures = health.failures.saturating_add(1);
        health.last_error = Some(error);
        drop(health);
        self.status_changes.send_modify(|n| *n += 1);
    }

    /// An update arrived: the stream works (again).
    fn watch_recovered(&self) {
        let mut health = self.watch_health();
        if health.failures == 0 {
            return;
        }
        *health = WatchHealth::default();
        drop(health);
        self.status_changes.send_modify(|n| *n += 1);
    }

    fn set_connected(&self, connected: bool) {
        if self.connected.swap(connected, Ordering::Relaxed) != connected {
            self.status_changes.send_modify(|n| *n += 1);
        }
    }

    /// Replaces the credentials and rebuilds both TLS configurations from them.
    fn set_credentials(&self, credentials: Credentials) -> Result<(), TlsError> {
        let client = credentials.client_config()?;
        let server = credentials.server_config()?;
        self.credentials.store(Arc::new(credentials));
        self.tls.store(client, server);
        self.status_changes.send_modify(|n| *n += 1);
        Ok(())
    }
}
