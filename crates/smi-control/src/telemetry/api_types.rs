//! The TrafficMetrics API's JSON (`metrics.smi-spec.io/v1alpha1`), as the SMI SDK's types
//! (v1alpha2, the shape the spec shows) serialize: the admin API serves these and `smictl top`
//! reads them back, so both ends agree by construction.
//!
//! Reading is lenient (missing fields take defaults, `null` is accepted where Go writes it), so
//! that `smictl top` also reads another implementation's server.

use serde::{Deserialize, Serialize};

use super::quantity;

/// The group/version of every object here.
pub const API_VERSION: &str = "metrics.smi-spec.io/v1alpha1";
/// Where the API is served.
pub const BASE_PATH: &str = "/apis/metrics.smi-spec.io/v1alpha1";

/// Metric names, in the order items list them.
pub const P99: &str = "p99_response_latency";
pub const P90: &str = "p90_response_latency";
pub const P50: &str = "p50_response_latency";
pub const SUCCESS_COUNT: &str = "success_count";
pub const FAILURE_COUNT: &str = "failure_count";
/// Not in the spec: requests the mesh refused (authorization), neither success nor failure.
pub const DENIED_COUNT: &str = "denied_count";
/// The unit of the latency metrics.
pub const MILLISECONDS: &str = "ms";

/// A Kubernetes `core/v1` ObjectReference, the fields the API uses. Empty fields are left out,
/// so an empty reference (every peer) is `{}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectReference {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
}

impl ObjectReference {
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            api_version: String::new(),
        }
    }
}

/// `metadata` of a TrafficMetrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectMeta {
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// RFC 3339: when the object was computed (it is, on every request).
    pub creation_timestamp: String,
    pub self_link: String,
}

/// `metadata` of a list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ListMeta {
    pub self_link: String,
}

/// The metrics of one resource, or of one of its edges.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TrafficMetrics {
    pub kind: String,
    pub api_version: String,
    pub metadata: ObjectMeta,
    /// RFC 3339: the end of the window.
    pub timestamp: String,
    /// A Go duration (`30s`, `1m0s`).
    pub window: String,
    pub resource: ObjectReference,
    pub edge: Option<Edge>,
    /// Only on the items of a TrafficSplit: which backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<Backend>,
    pub metrics: Vec<Metric>,
}

impl TrafficMetrics {
    /// The metric called `name`.
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name == name)
    }

    /// The value of metric `name`, as a number (see [`Metric::number`]).
    pub fn number(&self, name: &str) -> Option<f64> {
        self.metric(name).and_then(Metric::number)
    }
}

/// Which traffic of the resource an item describes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Edge {
    pub direction: Direction,
    pub side: Side,
    /// The peer; empty (`{}`) means every peer.
    pub resource: Option<ObjectReference>,
}

/// `to`: traffic from the resource to the edge's resource; `from`: traffic into the resource.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    To,
    #[default]
    From,
}

/// Where the metrics were measured.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Client,
    #[default]
    Server,
}

/// The TrafficSplit backend an item describes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Backend {
    /// The split's root service.
    pub apex: String,
    /// The backend service.
    pub name: String,
    /// Its weight in the current policy (relative to the others').
    pub weight: u64,
}

/// One metric: `value` is a Kubernetes Quantity string.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metric {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    pub value: Option<String>,
}

impl Metric {
    /// The value as a number (milli-units and SI suffixes read); `None` when absent or not a
    /// Quantity.
    pub fn number(&self) -> Option<f64> {
        self.value.as_deref().and_then(quantity::parse)
    }
}

/// A list of TrafficMetrics: a kind's resources, an object's edges, a split's backends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TrafficMetricsList {
    pub kind: String,
    pub api_version: String,
    pub metadata: ListMeta,
    /// What was asked for: a kind (and namespace), or an object.
    pub resource: ObjectReference,
    pub items: Vec<TrafficMetrics>,
}

/// The API's discovery document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ApiResourceList {
    pub kind: String,
    pub api_version: String,
    pub group_version: String,
    pub resources: Vec<ApiResource>,
}

/// One resource type the API serves.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ApiResource {
    pub name: String,
    pub singular_name: String,
    pub namespaced: bool,
    pub kind: String,
    pub verbs: Vec<String>,
}

/// The body of an error answer: `{"error": "..."}`, as smi-metrics answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorBody {
    pub error: String,
}
