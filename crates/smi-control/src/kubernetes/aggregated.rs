//! The TrafficMetrics API (`metrics.smi-spec.io/v1alpha1`) as a Kubernetes aggregated API:
//! `smi-control serve --kubernetes --aggregated-api-listen ADDR`, so that, once the
//! `APIService` points at the control's Service,
//! `kubectl get --raw /apis/metrics.smi-spec.io/v1alpha1/namespaces/NS/deployments/NAME/edges`
//! works, through kube-apiserver, with the cluster's own users and RBAC.
//!
//! The control serves it as an extension API server does (k8s.io/apiserver's delegating
//! authentication and authorization), on its own TLS listener:
//!
//! - `tls`: a serving certificate from the control's CA for
//!   `smi-control.smi-system.svc` and `smi-control.smi-system.svc.cluster.local` (and
//!   [`AggregatedApiConfig::server_names`]); the APIService's `caBundle` is the control's
//!   bundle. A client certificate is asked for, not required.
//! - [`requestheader`]: the user, groups and extra of a request come from the front proxy's
//!   headers (`X-Remote-User`, `X-Remote-Group`, `X-Remote-Extra-*`, as
//!   `kube-system/extension-apiserver-authentication` names them, watched), believed only from
//!   a client certificate that verifies against that ConfigMap's front-proxy CA with an allowed
//!   CN. Anything else is 401; anonymous requests are not served.
//! - [`review`]: each request is authorized by a SubjectAccessReview (answers cached 10 s), with
//!   the attributes kube-apiserver gives the path ([`attributes`]); 403 carries Kubernetes'
//!   message; a review that cannot be made is 500.
//! - Behind those, the admin listener's TrafficMetrics routes ([`crate::telemetry::routes`],
//!   the same router) and the group's discovery (`/apis/metrics.smi-spec.io`, the APIGroup;
//!   the APIResourceList is the routes'). `/healthz`, `/livez` and `/readyz` need nothing.
//!
//! The control's ServiceAccount needs the ClusterRole `system:auth-delegator` (to create
//! SubjectAccessReviews) and, in `kube-system`, the Role `extension-apiserver-authentication-reader`.
//!
//! Not served: callers that come straight to the listener with a bearer token or a client
//! certificate of the cluster's CA (`client-ca-file`): only kube-apiserver's proxy is
//! authenticated; aggregated discovery (`/apis` is a 404, so the aggregator reads the
//! APIResourceList instead) and OpenAPI (`/openapi/v2`, `/openapi/v3`: 404, which the aggregator
//! takes as no schema).

pub mod attributes;
mod guard;
mod listener;
pub mod requestheader;
pub mod review;
mod status;
mod tls;
mod trust;

pub use attributes::{Attributes, ResourceAttributes};
pub use requestheader::{FrontProxy, RequestHeaderConfig, Unauthenticated, User};
pub use review::{Decision, DecisionCache};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::response::Json;
use axum::routing::get;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::ca::{Authority, CaError};
use crate::telemetry::api_types::API_VERSION;
use crate::telemetry::{MetricsState, routes};
use guard::Gate;
use listener::{Peer, TlsListener};
use requestheader::{CONFIG_MAP_NAME, CONFIG_MAP_NAMESPACE, ConfigError};
use review::Reviewer;

/// The API group served.
pub const GROUP: &str = "metrics.smi-spec.io";
/// The names the serving certificate always has: the Service in `smi-system`, as the
/// APIService names it (`service: {namespace: smi-system, name: smi-control}`).
pub const SERVICE_NAMES: [&str; 2] = [
    "smi-control.smi-system.svc",
    "smi-control.smi-system.svc.cluster.local",
];

/// How the aggregated API is served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AggregatedApiConfig {
    /// Where it listens (`--aggregated-api-listen`). Default `0.0.0.0:8443`: the Service's
    /// `targetPort` (kube-apiserver reaches it from outside the pod).
    pub listen: SocketAddr,
    /// DNS names for the serving certificate besides [`SERVICE_NAMES`] (another namespace or
    /// cluster domain). Default none.
    pub server_names: Vec<String>,
    /// How long an allowed or denied answer is reused. Default 10 s, k8s.io/apiserver's
    /// delegating authorizer's (`--authorization-webhook-cache-authorized-ttl`).
    pub authorization_ttl: Duration,
    /// At most this many answers are kept. Default 1,024.
    pub authorization_cache: usize,
    /// How long a SubjectAccessReview may take before the request is a 500. Default 10 s,
    /// k8s.io/apiserver's webhook client timeout.
    pub review_timeout: Duration,
}

impl Default for AggregatedApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            server_names: Vec::new(),
            authorization_ttl: Duration::from_secs(10),
            authorization_cache: 1_024,
            review_timeout: Duration::from_secs(10),
        }
    }
}

impl AggregatedApiConfig {
    /// Every name of the serving certificate.
    pub fn dns_names(&self) -> Vec<String> {
        let mut names: Vec<String> = SERVICE_NAMES.iter().map(|&n| n.to_owned()).collect();
        for name in &self.server_names {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }
}

/// Why the aggregated API did not start.
#[derive(Debug, thiserror::Error)]
pub enum AggregatedApiError {
    #[error(
        "reading ConfigMap {CONFIG_MAP_NAMESPACE}/{CONFIG_MAP_NAME}: {0} (the control's ServiceAccount needs the Role extension-apiserver-authentication-reader in kube-system)"
    )]
    Read(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("issuing the aggregated API's certificate: {0}")]
    Certificate(#[from] CaError),
    #[error("the aggregated API's TLS configuration: {0}")]
    Tls(String),
    #[error("binding the aggregated API to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The CA the serving certificate comes from: the control's, replaced while it runs (the
/// builder's `Arc<ArcSwap<Authority>>`, which rotation swaps), or a fixed one.
#[derive(Clone, Debug)]
pub struct IssuingCa(Arc<ArcSwap<Authority>>);

impl From<Arc<ArcSwap<Authority>>> for IssuingCa {
    fn from(ca: Arc<ArcSwap<Authority>>) -> Self {
        Self(ca)
    }
}

impl From<Authority> for IssuingCa {
    fn from(ca: Authority) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(ca)))
    }
}

/// The running aggregated API: its address, and the task that serves it (it ends once
/// `stopping` turns true and the open requests are answered).
#[derive(Debug)]
pub struct AggregatedApi {
    addr: SocketAddr,
    front_proxy: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

// === impl AggregatedApi ===

impl AggregatedApi {
    /// Reads the front proxy, binds `config.listen` and serves `metrics` (the same store and
    /// hub as the admin listener's) with a certificate from `ca` (the control's, as it
    /// changes), until `stopping` turns true.
    pub async fn start(
        client: kube::Client,
        config: AggregatedApiConfig,
        metrics: MetricsState,
        ca: impl Into<IssuingCa>,
        stopping: watch::Receiver<bool>,
    ) -> Result<AggregatedApi, AggregatedApiError> {
        let IssuingCa(ca) = ca.into();
        let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), CONFIG_MAP_NAMESPACE);
        let first = trust::load(&configmaps).await?;
        let (generation, front_proxy) = watch::channel(first.generation);
        let front = Arc::new(ArcSwap::from_pointee(first));
        let names = config.dns_names();
        let server = tls::server_config(&ca.load(), &names)?;
        let tls = Arc::new(ArcSwap::from_pointee(server));
        let bind = |source| AggregatedApiError::Bind {
            addr: config.listen,
            source,
        };
        let tcp = TcpListener::bind(config.listen).await.map_err(bind)?;
        let addr = tcp.local_addr().map_err(bind)?;
        let listener = TlsListener::new(tcp, tls.clone()).map_err(bind)?;
        let gate = Gate {
            front: front.clone(),
            reviewer: Arc::new(Reviewer::new(
                client,
                config.authorization_ttl,
                config.authorization_cache,
                config.review_timeout,
            )),
        };
        let hub = metrics.hub.clone();
        let app = router(metrics, gate).into_make_service_with_connect_info::<Peer>();
        let mut until = stopping.clone();
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = until.wait_for(|stop| *stop).await;
        });
        let task = tokio::spawn(async move {
            let serve = async {
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "aggregated API server failed");
                }
            };
            let published = trust::Published {
                current: front,
                generation,
            };
            let follow = trust::follow(configmaps, published, stopping.clone());
            let renew = tls::renew(tls, ca, hub, names, stopping);
            tokio::join!(serve, follow, renew);
        });
        tracing::info!(%addr, group = GROUP, "TrafficMetrics aggregated API listening");
        Ok(AggregatedApi {
            addr,
            front_proxy,
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The generation of the front proxy in force (1 at start), changed each time the
    /// ConfigMap's change (or deletion) is taken.
    pub fn front_proxy_changes(&self) -> watch::Receiver<u64> {
        self.front_proxy.clone()
    }

    /// The serving task, for the control's list of tasks to wait on at shutdown.
    pub fn into_task(self) -> JoinHandle<()> {
        self.task
    }
}

/// The routes behind the guard: discovery of the group, the TrafficMetrics routes, health,
/// and Kubernetes' 404 for anything else.
fn router(metrics: MetricsState, gate: Gate) -> Router {
    let ok = || async { "ok" };
    let mut app = Router::new().route(&format!("/apis/{GROUP}"), get(api_group));
    for path in guard::HEALTH_PATHS {
        app = app.route(path, get(ok));
    }
    app.merge(routes::router(metrics))
        .fallback(status::not_found)
        // Around the fallback too: an unknown path is refused like a known one.
        .layer(from_fn_with_state(gate, guard::guard))
}

/// `GET /apis/metrics.smi-spec.io`: the APIGroup.
async fn api_group() -> Json<Value> {
    let version = json!({"groupVersion": API_VERSION, "version": "v1alpha1"});
    Json(json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": GROUP,
        "versions": [version],
        "preferredVersion": version,
    }))
}

#[cfg(test)]
mod tests;
