//! [`MeshConfig`]: how a workload reaches the control, what it subscribes to, its names for
//! telemetry and how it reports; from code or from `SMI_*` environment variables.

use std::path::PathBuf;
use std::time::Duration;

use smi_core::telemetry::WorkloadError;
use smi_tls::TlsError;

use crate::control::{ClientError, ControlAddr};
use crate::metrics::ISTIO_DURATION_BUCKETS_MS;
use crate::trace::TraceHandle;

/// How often a workload reports its traffic to the control by default.
pub const DEFAULT_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// How a workload reaches the control service, and what it subscribes to.
#[derive(Clone, Debug)]
pub struct MeshConfig {
    /// The control service's addresses (`SMI_CONTROL_ADDR`): every connection goes to the first
    /// that answers, starting from the one that answered last.
    pub control: ControlAddr,
    /// The token enrolled with: a join token (`smi1.`...), or a pod's projected
    /// ServiceAccount token (audience `smi-mesh`), which needs [`MeshConfig::ca_bundle`].
    pub token: String,
    /// The file the token was read from (`SMI_TOKEN_FILE`). A token that is not a join token
    /// is read from it again at every renewal and renews by itself (the kubelet rotates it,
    /// and the control checks the pod afresh); if it cannot be read, the renewal is by
    /// certificate. Join tokens renew by certificate whatever this says. Default none.
    pub token_file: Option<PathBuf>,
    /// The control's CA bundle, PEM (read from `SMI_CA_FILE`, e.g. a mounted ConfigMap): what
    /// first contact trusts when the token pins no CA. Unused with a join token, which pins
    /// its own. Default none.
    pub ca_bundle: Option<String>,
    /// The control's trust domain (`SMI_TRUST_DOMAIN`), whose control identity first contact
    /// accepts when the token does not name one (a join token does). Default `cluster.local`
    /// (`smi_core::DEFAULT_TRUST_DOMAIN`).
    pub trust_domain: String,
    /// Services this workload calls (`ns/name`), or `*` for all: their splits and endpoints are
    /// sent to it.
    pub calls: Vec<String>,
    /// A name for this instance in the control's admin views (e.g. the pod name). Free-form;
    /// telemetry uses [`MeshConfig::pod_name`] and [`MeshConfig::workload_name`].
    pub workload: String,
    /// How long [`Mesh::start`] waits for the first policy.
    pub ready_timeout: Duration,
    /// The pod's name (`SMI_POD_NAME`). Default: the host name, lower-cased, with characters
    /// Kubernetes refuses replaced by `-`.
    pub pod_name: Option<String>,
    /// The workload's (Deployment's) name (`SMI_WORKLOAD_NAME`). Default: the pod name without
    /// Kubernetes' `-<pod-template-hash>-<suffix>` (`Workload::name_of_pod`).
    pub workload_name: Option<String>,
    /// The namespace (`SMI_NAMESPACE`): always the identity's; when set, [`Mesh::start`] fails
    /// if the control grants an identity in another namespace.
    pub namespace: Option<String>,
    /// How often traffic statistics go to the control (`SMI_REPORT_INTERVAL`, seconds).
    /// Default: [`DEFAULT_REPORT_INTERVAL`]; zero: never.
    pub report_interval: Duration,
    /// Bounds of `istio_request_duration_milliseconds`, milliseconds. Default: Istio's
    /// ([`ISTIO_DURATION_BUCKETS_MS`]).
    pub duration_buckets_ms: Vec<f64>,
    /// Also serve OSM's `osm_request_total` and `osm_request_duration_ms` (`SMI_OSM_METRICS=1`).
    /// Default: off.
    pub osm_metrics: bool,
    /// Where spans go (`crate::trace`). Default: nowhere; [`MeshConfig::from_env`] exports
    /// over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (feature `otlp`).
    pub trace: TraceHandle,
}

impl MeshConfig {
    pub fn new(control: ControlAddr, token: impl Into<String>) -> Self {
        Self {
            control,
            token: token.into(),
            token_file: None,
            ca_bundle: None,
            trust_domain: smi_core::DEFAULT_TRUST_DOMAIN.to_owned(),
            calls: vec!["*".to_owned()],
            workload: std::process::id().to_string(),
            ready_timeout: Duration::from_secs(10),
            pod_name: None,
            workload_name: None,
            namespace: None,
            report_interval: DEFAULT_REPORT_INTERVAL,
            duration_buckets_ms: ISTIO_DURATION_BUCKETS_MS.to_vec(),
            osm_metrics: false,
            trace: TraceHandle::default(),
        }
    }

    /// From `SMI_CONTROL_ADDR` and `SMI_TOKEN` (or `SMI_TOKEN_FILE`, kept as
    /// [`MeshConfig::token_file`]; with a ServiceAccount token also `SMI_CA_FILE`, and
    /// `SMI_TRUST_DOMAIN` if it is not `cluster.local`). `SMI_CONTROL_ADDR` is
    /// `host:port`, or several separated by commas (`SMI_CONTROL_ADDR=a:7443,b:7443,c:7443`, at
    /// most [`MAX_CONTROL_ADDRS`](crate::control::MAX_CONTROL_ADDRS); a host name stands for every address it resolves to): the
    /// workload fails over between them ([`ControlAddr`]), and starts at one chosen at random so
    /// that workloads spread over the replicas ([`ControlAddr::starting_anywhere`]). `SMI_CALLS` is an optional
    /// comma-separated list of services (default `*`), `SMI_WORKLOAD` an optional name;
    /// `SMI_POD_NAME`, `SMI_WORKLOAD_NAME`, `SMI_NAMESPACE`, `SMI_REPORT_INTERVAL` (seconds)
    /// and `SMI_OSM_METRICS` (`1` or `true`) are optional too; the OpenTelemetry variables
    /// configure trace export (`TraceHandle::from_env`: call this inside a Tokio runtime).
    pub fn from_env() -> Result<Self, MeshError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let addr = var("SMI_CONTROL_ADDR").ok_or(MeshError::Env("SMI_CONTROL_ADDR is not set"))?;
        let (token, token_file) = match (var("SMI_TOKEN"), var("SMI_TOKEN_FILE")) {
            (Some(token), _) => (token, None),
            (None, Some(path)) => (read_token(&path)?, Some(PathBuf::from(path))),
            (None, None) => return Err(MeshError::Env("set SMI_TOKEN or SMI_TOKEN_FILE")),
        };
        let mut config = Self::new(ControlAddr::parse(&addr)?.starting_anywhere(), token);
        config.token_file = token_file;
        if let Some(path) = var("SMI_CA_FILE") {
            let pem = std::fs::read_to_string(&path).map_err(|e| MeshError::CaFile(path, e))?;
            config.ca_bundle = Some(pem);
        }
        if let Some(trust_domain) = var("SMI_TRUST_DOMAIN") {
            config.trust_domain = trust_domain.trim().to_owned();
        }
        if let Some(calls) = var("SMI_CALLS") {
            config.calls = calls.split(',').map(|s| s.trim().to_owned()).collect();
        }
        if let Some(workload) = var("SMI_WORKLOAD") {
            config.workload = workload;
        }
        config.pod_name = var("SMI_POD_NAME");
        config.workload_name = var("SMI_WORKLOAD_NAME");
        config.namespace = var("SMI_NAMESPACE");
        if let Some(seconds) = var("SMI_REPORT_INTERVAL") {
            config.report_interval = seconds
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .ok_or(MeshError::Env(
                    "SMI_REPORT_INTERVAL must be a number of seconds (0: no reports)",
                ))?;
        }
        if let Some(osm) = var("SMI_OSM_METRICS") {
            config.osm_metrics = matches!(osm.trim(), "1" | "true" | "yes");
        }
        config.trace = TraceHandle::from_env();
        Ok(config)
    }

    /// Where the token is read from again at each renewal (see [`MeshConfig::token_file`]).
    #[must_use]
    pub fn token_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.token_file = Some(path.into());
        self
    }

    /// The control's CA bundle (PEM), for a token that pins none.
    #[must_use]
    pub fn ca_bundle(mut self, pem: impl Into<String>) -> Self {
        self.ca_bundle = Some(pem.into());
        self
    }

    #[must_use]
    pub fn trust_domain(mut self, trust_domain: impl Into<String>) -> Self {
        self.trust_domain = trust_domain.into();
        self
    }

    pub fn calls<I: IntoIterator<Item = S>, S: Into<String>>(mut self, services: I) -> Self {
        self.calls = services.into_iter().map(Into::into).collect();
        self
    }

    pub fn workload(mut self, name: impl Into<String>) -> Self {
        self.workload = name.into();
        self
    }

    #[must_use]
    pub fn pod_name(mut self, pod: impl Into<String>) -> Self {
        self.pod_name = Some(pod.into());
        self
    }

    #[must_use]
    pub fn workload_name(mut self, name: impl Into<String>) -> Self {
        self.workload_name = Some(name.into());
        self
    }

    /// The workload's and the pod's names at once.
    #[must_use]
    pub fn names(self, workload: &str, pod: &str) -> Self {
        self.workload_name(workload).pod_name(pod)
    }

    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    #[must_use]
    pub fn report_interval(mut self, interval: Duration) -> Self {
        self.report_interval = interval;
        self
    }

    #[must_use]
    pub fn osm_metrics(mut self, on: bool) -> Self {
        self.osm_metrics = on;
        self
    }

    #[must_use]
    pub fn duration_buckets_ms(mut self, bounds: impl Into<Vec<f64>>) -> Self {
        self.duration_buckets_ms = bounds.into();
        self
    }
}

/// The token in `path`, trimmed.
fn read_token(path: &str) -> Result<String, MeshError> {
    std::fs::read_to_string(path)
        .map(|t| t.trim().to_owned())
        .map_err(|e| MeshError::TokenFile(path.to_owned(), e))
}

#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("{0}")]
    Env(&'static str),
    #[error("reading the token from {0}: {1}")]
    TokenFile(String, std::io::Error),
    #[error("reading the control's CA bundle from {0} (SMI_CA_FILE): {1}")]
    CaFile(String, std::io::Error),
    #[error(
        "the token is not a join token (smi1.<claims>.<mac>), so it pins no CA: set SMI_CA_FILE (or MeshConfig::ca_bundle) to the control's CA bundle (PEM)"
    )]
    NoCaBundle,
    #[error(transparent)]
    Control(#[from] ClientError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("no policy from the control service within {0:?}")]
    NotReady(Duration),
    #[error("the workload's names: {0}")]
    Names(#[from] WorkloadError),
    #[error(
        "SMI_NAMESPACE (or MeshConfig::namespace) is {configured:?}, but the control granted {identity}, in namespace {granted:?}: the namespace is the identity's"
    )]
    Namespace {
        configured: String,
        granted: String,
        identity: String,
    },
}
