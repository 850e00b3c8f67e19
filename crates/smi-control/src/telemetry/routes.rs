//! The TrafficMetrics API on the admin listener, at smi-metrics' paths under [`BASE_PATH`]:
//!
//! | GET | answers |
//! |---|---|
//! | `/` | the APIResourceList |
//! | `/{kind}` | TrafficMetricsList over every namespace |
//! | `/namespaces/{ns}` | TrafficMetrics of the namespace |
//! | `/namespaces/{ns}/edges` | TrafficMetricsList, one item per peer and direction |
//! | `/namespaces/{ns}/{kind}` | TrafficMetricsList |
//! | `/namespaces/{ns}/{kind}/{name}` | TrafficMetrics (a TrafficSplit: a list, one item per backend) |
//! | `/namespaces/{ns}/{kind}/{name}/edges` | TrafficMetricsList, one item per peer and direction |
//!
//! `?t=30s` sets the window (a Go duration; default 30 s, at most the store's hour). Kinds:
//! `namespaces`, `deployments`, `pods`, `trafficsplits`; any other is 404
//! `{"error":"Unsupported resource: X"}`, an unknown object 404 with the reason, a bad window
//! 400. The admin guard applies as to `/debug/*`: the token, when one is configured.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde::Deserialize;

use super::api_types::{BASE_PATH, ErrorBody};
use super::resources::{Answer, Answers, ApiError, Kind, resource_list, window};
use super::store::TelemetryStore;
use crate::hub::Hub;

/// What the API reads: the store, and the policy (TrafficSplits and their weights).
#[derive(Clone, Debug)]
pub struct MetricsState {
    pub telemetry: Arc<TelemetryStore>,
    pub hub: Arc<Hub>,
}

pub fn router(state: MetricsState) -> Router {
    let path = |p: &str| format!("{BASE_PATH}{p}");
    Router::new()
        .route(BASE_PATH, get(discovery))
        .route(&path("/"), get(discovery))
        .route(&path("/{kind}"), get(cluster))
        .route(&path("/namespaces/{ns}"), get(namespace))
        .route(&path("/namespaces/{ns}/{kind}"), get(in_namespace))
        .route(&path("/namespaces/{ns}/{kind}/{name}"), get(object))
        .route(
            &path("/namespaces/{ns}/{kind}/{name}/edges"),
            get(object_edges),
        )
        .with_state(state)
}

#[derive(Debug, Deserialize)]
struct Params {
    t: Option<String>,
}

type Window = Result<Query<Params>, QueryRejection>;

async fn discovery() -> Json<super::api_types::ApiResourceList> {
    Json(resource_list())
}

async fn cluster(State(s): State<MetricsState>, Path(kind): Path<String>, q: Window) -> Response {
    answer(&s, q, |a| Ok(Answer::List(a.list(kind_of(&kind)?, None)?)))
}

async fn namespace(State(s): State<MetricsState>, Path(ns): Path<String>, q: Window) -> Response {
    answer(&s, q, |a| a.get(Kind::Namespaces, "", &ns))
}

async fn in_namespace(
    State(s): State<MetricsState>,
    Path((ns, kind)): Path<(String, String)>,
    q: Window,
) -> Response {
    answer(&s, q, |a| {
        if kind == "edges" {
            return Ok(Answer::List(a.edges(Kind::Namespaces, "", &ns)?));
        }
        Ok(Answer::List(a.list(kind_of(&kind)?, Some(&ns))?))
    })
}

async fn object(
    State(s): State<MetricsState>,
    Path((ns, kind, name)): Path<(String, String, String)>,
    q: Window,
) -> Response {
    answer(&s, q, |a| a.get(object_kind(&kind)?, &ns, &name))
}

async fn object_edges(
    State(s): State<MetricsState>,
    Path((ns, kind, name)): Path<(String, String, String)>,
    q: Window,
) -> Response {
    answer(&s, q, |a| {
        Ok(Answer::List(a.edges(object_kind(&kind)?, &ns, &name)?))
    })
}

/// The kind a path names, or smi-metrics' 404.
fn kind_of(kind: &str) -> Result<Kind, ApiError> {
    Kind::from_plural(kind)
        .ok_or_else(|| ApiError::NotFound(format!("Unsupported resource: {kind}")))
}

/// A kind of namespaced objects (`/namespaces/{ns}/namespaces/{name}` names none).
fn object_kind(kind: &str) -> Result<Kind, ApiError> {
    match kind_of(kind)? {
        Kind::Namespaces => Err(ApiError::NotFound(
            "namespaces are not namespaced: GET /namespaces/{name}".to_owned(),
        )),
        k => Ok(k),
    }
}

/// Reads the window, then answers from the current store and policy.
fn answer(
    s: &MetricsState,
    params: Window,
    compute: impl FnOnce(&Answers<'_>) -> Result<Answer, ApiError>,
) -> Response {
    let t = match &params {
        Ok(Query(p)) => p.t.as_deref(),
        Err(e) => return error(ApiError::BadRequest(format!("the query string: {e}"))),
    };
    let window = match window(t) {
        Ok(w) => w,
        Err(e) => return error(e),
    };
    let published = s.hub.latest();
    let answers = Answers {
        store: &s.telemetry,
        policy: &published.policy,
        window,
    };
    match compute(&answers) {
        Ok(Answer::One(item)) => Json(item).into_response(),
        Ok(Answer::List(list)) => Json(list).into_response(),
        Err(e) => error(e),
    }
}

fn error(e: ApiError) -> Response {
    let (status, error) = match e {
        ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
        ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
    };
    (status, Json(ErrorBody { error })).into_response()
}

#[cfg(test)]
mod tests;
