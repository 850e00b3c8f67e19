//! The API's vocabulary: the kinds it serves, its discovery document, the `?t=` window, and
//! what a request can come to.

use std::time::Duration;

use crate::telemetry::api_types::{
    API_VERSION, ApiResource, ApiResourceList, TrafficMetrics, TrafficMetricsList,
};
use crate::telemetry::go_duration;
use crate::telemetry::ring::SPAN;

/// The resource kinds served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Namespaces,
    Deployments,
    Pods,
    TrafficSplits,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Namespaces,
        Kind::Deployments,
        Kind::Pods,
        Kind::TrafficSplits,
    ];

    /// The kind a path names (`deployments`); `None` for any other.
    pub fn from_plural(plural: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.plural() == plural)
    }

    pub fn plural(self) -> &'static str {
        match self {
            Kind::Namespaces => "namespaces",
            Kind::Deployments => "deployments",
            Kind::Pods => "pods",
            Kind::TrafficSplits => "trafficsplits",
        }
    }

    /// The Kubernetes kind of its objects.
    pub fn object_kind(self) -> &'static str {
        match self {
            Kind::Namespaces => "Namespace",
            Kind::Deployments => "Deployment",
            Kind::Pods => "Pod",
            Kind::TrafficSplits => "TrafficSplit",
        }
    }

    pub(super) fn of_object_kind(kind: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.object_kind() == kind)
    }
}

/// Why a request has no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    NotFound(String),
    BadRequest(String),
}

/// An object's metrics, or a list (a TrafficSplit's are one item per backend).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    One(Box<TrafficMetrics>),
    List(TrafficMetricsList),
}

/// The default window, as smi-metrics and the SDK have it.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30);

/// The `?t=` window: a Go duration, [`DEFAULT_WINDOW`] when absent, at most [`SPAN`].
pub fn window(t: Option<&str>) -> Result<Duration, ApiError> {
    let Some(t) = t else {
        return Ok(DEFAULT_WINDOW);
    };
    let window = go_duration::parse(t).map_err(|e| ApiError::BadRequest(format!("t: {e}")))?;
    if window.is_zero() {
        return Err(ApiError::BadRequest(format!(
            "t: {t:?}: a window must be longer than zero"
        )));
    }
    Ok(window.min(SPAN))
}

/// The discovery document.
pub fn resource_list() -> ApiResourceList {
    ApiResourceList {
        kind: "APIResourceList".to_owned(),
        api_version: "v1".to_owned(),
        group_version: API_VERSION.to_owned(),
        resources: Kind::ALL
            .into_iter()
            .map(|k| ApiResource {
                name: k.plural().to_owned(),
                singular_name: String::new(),
                namespaced: k != Kind::Namespaces,
                kind: "TrafficMetrics".to_owned(),
                verbs: vec!["get".to_owned(), "list".to_owned()],
            })
            .collect(),
    }
}
