//! The admin HTTP server (axum): health, readiness, Prometheus metrics, debug views, and the
//! SMI TrafficMetrics API (`/apis/metrics.smi-spec.io/v1alpha1/...`, [`crate::telemetry::routes`]).
//!
//! It listens on loopback by default. Every request must name it in `Host` (see [`access`]:
//! against DNS rebinding), and with a token configured, everything but `/healthz`, `/readyz`
//! and `/metrics` (so `/debug/*` and `/apis/*`) needs `Authorization: Bearer <token>`.

mod access;

pub use access::{Access, AdminToken, AllowedHosts, TokenFileError};

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use serde_json::json;

use crate::hub::Hub;
use crate::status::Status;
use crate::telemetry::{MetricsState, TelemetryStore, routes};
use crate::traits::StateStore;

#[derive(Clone, Debug)]
pub struct AdminState {
    pub hub: Arc<Hub>,
    pub status: Arc<Status>,
    pub telemetry: Arc<TelemetryStore>,
    pub store: StoreView,
}

/// The state store as the admin API shows it: its name and whether it is reachable (an etcd
/// replica cut off from etcd says so here and serves its last state).
#[derive(Clone, Default)]
pub struct StoreView(Option<Arc<dyn StateStore>>);

impl StoreView {
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        Self(Some(store))
    }

    fn json(&self) -> serde_json::Value {
        match &self.0 {
            Some(store) => json!({ "name": store.name(), "health": store.health() }),
            None => serde_json::Value::Null,
        }
    }

    fn connected(&self) -> bool {
        self.0.as_ref().is_none_or(|s| s.health().connected)
    }
}

impl std::fmt::Debug for StoreView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StoreView")
            .field(&self.0.as_ref().map(|s| s.name().to_owned()))
            .finish()
    }
}

pub fn router(state: AdminState, access: Access) -> Router {
    let metrics_api = routes::router(MetricsState {
        telemetry: state.telemetry.clone(),
        hub: state.hub.clone(),
    });
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(|| async { "ready\n" }))
        .route("/metrics", get(metrics))
        .route("/debug/policy", get(policy))
        .route("/debug/workloads", get(workloads))
        .with_state(state)
        .merge(metrics_api)
        // Around the fallback too: an unknown path is refused like a known one.
        .layer(from_fn_with_state(access, access::guard))
}

/// Says so at start when the admin API is reachable from other machines.
pub fn warn_if_exposed(addr: SocketAddr, token: bool) {
    if addr.ip().is_loopback() {
        return;
    }
    if token {
        tracing::warn!(%addr, "the admin API listens on a non-loopback address: anyone who can reach it can read /metrics; /debug/* needs the admin token");
    } else {
        tracing::warn!(%addr, "the admin API listens on a non-loopback address WITHOUT a token: anyone who can reach it can read /metrics and /debug/* (the policy, endpoints and workloads); use --admin-token-file, or bind to 127.0.0.1");
    }
}

async fn metrics(State(s): State<AdminState>) -> impl IntoResponse {
    let mut body = s
        .status
        .prometheus(s.hub.subscribers(), s.hub.latest().endpoint_count());
    body.push_str(&s.telemetry.prometheus());
    body.push_str(
        "# HELP smi_control_store_connected Whether the control follows its state store now (0: it serves the last state it saw).\n# TYPE smi_control_store_connected gauge\n",
    );
    body.push_str(&format!(
        "smi_control_store_connected {}\n",
        u8::from(s.store.connected())
    ));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        body,
    )
}

async fn policy(State(s): State<AdminState>) -> impl IntoResponse {
    let published = s.hub.latest();
    let p = &published.policy;
    let names = |items: Vec<(&str, &str)>| {
        items
            .into_iter()
            .map(|(ns, name)| format!("{ns}/{name}"))
            .collect::<Vec<_>>()
    };
    Json(json!({
        "version": published.version,
        "status": s.status.policy(),
        "permissive": published.permissive,
        "resources": {
            "traffic_targets": names(p.targets.iter().map(|t| (t.meta.namespace.as_str(), t.meta.name.as_str())).collect()),
            "http_route_groups": names(p.route_groups.iter().map(|g| (g.meta.namespace.as_str(), g.meta.name.as_str())).collect()),
            "l4_routes": names(p.l4_routes.iter().map(|r| (r.meta.namespace.as_str(), r.meta.name.as_str())).collect()),
            "traffic_splits": names(p.splits.iter().map(|t| (t.meta.namespace.as_str(), t.meta.name.as_str())).collect()),
        },
        "endpoints": published.endpoints.iter().map(|(service, eps)| json!({
            "service": service.to_string(),
            "endpoints": eps.iter().map(|e| json!({
                "address": e.address.ip().to_string(),
                "port": e.address.port(),
                "identity": e.identity.to_string(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "trust_bundle_roots": published.bundle.len(),
        "store": s.store.json(),
    }))
}

async fn workloads(State(s): State<AdminState>) -> impl IntoResponse {
    Json(json!({
        "version": s.hub.latest().version,
        "workloads": s.status.sessions(),
        "failing_watches": s.status.failing_watches(),
    }))
}

#[cfg(test)]
mod tests;
