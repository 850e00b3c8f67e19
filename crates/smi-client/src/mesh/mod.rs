//! [`Mesh`]: one per process, shared by the outbound client and the inbound server.
//!
//! It enrolls with the control service (the key is made here), renews the certificate at about
//! 70% of its lifetime (with the rotated ServiceAccount token when it enrolled with one from a
//! file: `proof`), and keeps a Watch stream open for policy, endpoints and the trust bundle.
//! Everything a request needs is behind `ArcSwap`: per-request reads take no lock. When the
//! control is unreachable the workload keeps its last policy and certificate and reconnects with
//! jittered backoff. Every `report_interval` it reports its traffic statistics to the control
//! (`report`).
//!
//! Its names for telemetry (pod, workload, namespace) come from the configuration or default
//! from the host name (`names`); they go to the control at enrollment and renewal (the CA
//! writes them into the certificate, where peers read them) and label its metrics.

mod assemble;
mod backoff;
mod config;
mod names;
mod proof;
mod register;
mod renew;
mod report;
mod state;
mod watch;

pub use config::{DEFAULT_REPORT_INTERVAL, MeshConfig, MeshError};
pub use register::Registration;
pub use report::MAX_EDGES_PER_REPORT;
pub use state::{Endpoint, PolicyState, ServiceEndpoints};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use arc_swap::{ArcSwap, Guard};
use rustls::{ClientConfig, ServerConfig};
use smi_core::SpiffeId;
use smi_core::telemetry::Workload;
use smi_tls::TlsError;
use tokio::sync::watch as signal;
use tokio::task::JoinHandle;

use crate::control::Credentials;
use crate::handles::{Handles, PolicyHandle, StatusHandle, TlsHandle};
use crate::metrics::{LocalNames, Metrics, MetricsOptions};

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
    /// Traffic reports the control received, and Report RPCs that failed (each is retried).
    pub reports_sent: u64,
    pub reports_failed: u64,
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
    /// Our names for telemetry, the namespace the identity's.
    workload: Workload,
    reports: ReportHealth,
    /// What the data-plane layers read: [`Mesh::handles`] hands out clones.
    policy: PolicyHandle,
    tls: TlsHandle,
    metrics: Metrics,
    /// Counts status changes: a certificate replaced, the Watch stream opened or lost.
    status_changes: signal::Sender<u64>,
    connected: AtomicBool,
    watch_health: std::sync::Mutex<WatchHealth>,
}

/// Report RPCs delivered and failed.
#[derive(Debug, Default)]
struct ReportHealth {
    sent: AtomicU64,
    failed: AtomicU64,
}

impl Inner {
    /// A report was delivered (`true`) or its RPC failed.
    fn reported(&self, delivered: bool) {
        let counter = if delivered {
            &self.reports.sent
        } else {
            &self.reports.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.status_changes.send_modify(|n| *n += 1);
    }
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
    /// Enrolls (sending the workload's names), starts renewal, the policy watch and the
    /// traffic reports, and waits for the first policy.
    pub async fn start(config: MeshConfig) -> Result<Mesh, MeshError> {
        let (pod, name) = names::resolve(&config)?;
        let mut workload = Workload::new(config.namespace.clone().unwrap_or_default(), name, pod);
        let credentials = proof::enroll(&config, &workload).await?;
        let identity = credentials.spiffe_id().clone();
        let granted = identity.namespace();
        if let Some(configured) = config.namespace.as_ref().filter(|ns| *ns != granted) {
            return Err(MeshError::Namespace {
                configured: configured.clone(),
                granted: granted.to_owned(),
                identity: identity.to_string(),
            });
        }
        workload.namespace = granted.to_owned();
        let metrics = Metrics::with_options(
            LocalNames::new(&identity, workload.clone(), names::serves(&credentials)),
            &MetricsOptions {
                duration_buckets_ms: config.duration_buckets_ms.clone(),
                osm: config.osm_metrics,
                ..MetricsOptions::default()
            },
        );
        let inner = Arc::new(Inner::new(config, credentials, workload, metrics)?);
        let mut tasks = vec![
            tokio::spawn(watch::run(inner.clone())),
            tokio::spawn(renew::run(inner.clone())),
        ];
        if !inner.config.report_interval.is_zero() {
            tasks.push(tokio::spawn(report::run(inner.clone())));
        }
        let tasks = Tasks(tasks);
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
        .with_trace(self.inner.config.trace.clone())
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

    /// This workload's names for telemetry: its namespace (the identity's), workload and pod.
    pub fn workload(&self) -> &Workload {
        &self.inner.workload
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
    /// new bundle), the Watch stream opened or was lost, or a traffic report was sent or failed.
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
    /// Before the first policy: nothing allowed, not connected.
    fn new(
        config: MeshConfig,
        credentials: Credentials,
        workload: Workload,
        metrics: Metrics,
    ) -> Result<Self, TlsError> {
        let identity = credentials.spiffe_id().clone();
        let (status_changes, _) = signal::channel(0);
        Ok(Self {
            tls: TlsHandle::new(credentials.client_config()?, credentials.server_config()?),
            credentials: ArcSwap::from_pointee(credentials),
            policy: PolicyHandle::new(identity.clone(), PolicyState::empty(&identity.trust_domain)),
            workload,
            reports: ReportHealth::default(),
            config,
            status_changes,
            connected: AtomicBool::new(false),
            watch_health: std::sync::Mutex::default(),
            metrics,
        })
    }

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
            reports_sent: self.reports.sent.load(Ordering::Relaxed),
            reports_failed: self.reports.failed.load(Ordering::Relaxed),
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
        self.metrics.set_serves(&names::serves(&credentials));
        self.credentials.store(Arc::new(credentials));
        self.tls.store(client, server);
        self.status_changes.send_modify(|n| *n += 1);
        Ok(())
    }
}
