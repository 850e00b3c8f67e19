//! The admin HTTP server (axum): health, readiness, Prometheus metrics, and debug views.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use serde_json::json;

use crate::distribute::Hub;
use crate::registry::Registry;
use crate::status::Status;

#[derive(Clone, Debug)]
pub struct AdminState {
    pub hub: Arc<Hub>,
    pub registry: Arc<Registry>,
    pub status: Arc<Status>,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(|| async { "ready\n" }))
        .route("/metrics", get(metrics))
        .route("/debug/policy", get(policy))
        .route("/debug/workloads", get(workloads))
        .with_state(state)
}

async fn metrics(State(s): State<AdminState>) -> impl IntoResponse {
    let body = s
        .status
        .prometheus(s.hub.subscribers(), s.registry.endpoint_count());
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
        "endpoints": published.endpoints.iter().map(|((ns, name), eps)| json!({
            "service": format!("{ns}/{name}"),
            "endpoints": eps.iter().map(|e| json!({"address": e.address, "port": e.port, "identity": e.identity})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "trust_bundle_roots": published.bundle.len(),
    }))
}

async fn workloads(State(s): State<AdminState>) -> impl IntoResponse {
    Json(json!({ "version": s.hub.latest().version, "workloads": s.status.sessions() }))
}
