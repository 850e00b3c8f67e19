//! How objects are named and shown: references, self links, timestamps, metric values, and
//! which pods and peers a series belongs to.

use std::time::{SystemTime, UNIX_EPOCH};

use smi_core::model::TrafficSplit;
use smi_core::telemetry::{Direction as Recorded, Workload};

use super::kind::{ApiError, Kind};
use crate::telemetry::api_types::{
    API_VERSION, BASE_PATH, DENIED_COUNT, Direction, Edge, FAILURE_COUNT, ListMeta, MILLISECONDS,
    Metric, ObjectReference, P50, P90, P99, SUCCESS_COUNT, Side, TrafficMetrics,
    TrafficMetricsList,
};
use crate::telemetry::go_duration;
use crate::telemetry::quantity;
use crate::telemetry::query::Totals;
use crate::telemetry::report::EdgeKey;
use crate::telemetry::ring::SPAN;

/// The metrics of `totals`, in the spec's order, then the denials. A latency with no answered
/// request in the window is `0`, as the SDK's defaults are.
pub(super) fn metrics(totals: &Totals) -> Vec<Metric> {
    let latency = |name: &str, q: f64| Metric {
        name: name.to_owned(),
        unit: Some(MILLISECONDS.to_owned()),
        value: Some(
            totals
                .latency
                .quantile(q)
                .map_or_else(|| "0".to_owned(), quantity::latency_ms),
        ),
    };
    let count = |name: &str, n: u64| Metric {
        name: name.to_owned(),
        unit: None,
        value: Some(quantity::count(n)),
    };
    let c = &totals.counts;
    vec![
        latency(P99, 0.99),
        latency(P90, 0.90),
        latency(P50, 0.50),
        count(SUCCESS_COUNT, c.success),
        count(FAILURE_COUNT, c.failure),
        count(DENIED_COUNT, c.denied),
    ]
}

pub(super) fn list(
    resource: ObjectReference,
    self_link: String,
    items: Vec<TrafficMetrics>,
) -> TrafficMetricsList {
    TrafficMetricsList {
        kind: "TrafficMetricsList".to_owned(),
        api_version: API_VERSION.to_owned(),
        metadata: ListMeta { self_link },
        resource,
        items,
    }
}

/// The reference to an object of `kind` (a namespace has no namespace).
pub(super) fn object(kind: Kind, namespace: &str, name: &str) -> ObjectReference {
    let namespace = if kind == Kind::Namespaces {
        ""
    } else {
        namespace
    };
    ObjectReference::new(kind.object_kind(), namespace, name)
}

/// The resource of `kind` a pod belongs to.
pub(super) fn resource_of(kind: Kind, w: &Workload) -> ObjectReference {
    match kind {
        Kind::Namespaces => ObjectReference::new("Namespace", "", &w.namespace),
        Kind::Pods => ObjectReference::new("Pod", &w.namespace, &w.pod),
        Kind::Deployments | Kind::TrafficSplits => {
            ObjectReference::new("Deployment", &w.namespace, &w.name)
        }
    }
}

/// Whether pod `w` is part of `object`, of `kind`.
pub(super) fn selects(kind: Kind, object: &ObjectReference, w: &Workload) -> bool {
    match kind {
        Kind::Namespaces => w.namespace == object.name,
        Kind::Pods => w.namespace == object.namespace && w.pod == object.name,
        Kind::Deployments | Kind::TrafficSplits => {
            w.namespace == object.namespace && w.name == object.name
        }
    }
}

pub(super) fn not_found(kind: Kind, object: &ObjectReference) -> ApiError {
    let within = go_duration::format(SPAN);
    ApiError::NotFound(if kind == Kind::Namespaces {
        format!(
            "namespaces {:?} not found: no workload in it has reported traffic in the last {within}",
            object.name
        )
    } else {
        format!(
            "{} {:?} not found in namespace {:?}: no workload of that name has reported traffic in the last {within}",
            kind.plural(),
            object.name,
            object.namespace
        )
    })
}

/// `edge` of an object's own metrics: everything it received, as its servers measured it.
pub(super) fn whole_inbound() -> Edge {
    Edge {
        direction: Direction::From,
        side: Side::Server,
        resource: Some(ObjectReference::default()),
    }
}

/// The edge direction of a series.
pub(super) fn direction(key: &EdgeKey) -> (Direction, Side) {
    match key.direction {
        Recorded::Inbound => (Direction::From, Side::Server),
        Recorded::Outbound => (Direction::To, Side::Client),
    }
}

/// Who is at the other end of a series (see the module's docs); `None` when nothing is known.
pub(super) fn peer(key: &EdgeKey) -> Option<ObjectReference> {
    let ns = key.peer_namespace();
    if !key.peer_workload.is_empty() {
        return Some(ObjectReference::new("Deployment", ns, &key.peer_workload));
    }
    if !key.peer_identity.is_empty() {
        return Some(ObjectReference::new(
            "ServiceAccount",
            ns,
            key.peer_account(),
        ));
    }
    let (ns, name) = key.service.split_once('/')?;
    (key.direction == Recorded::Outbound).then(|| ObjectReference::new("Service", ns, name))
}

pub(super) fn apex(split: &TrafficSplit) -> String {
    format!("{}/{}", split.meta.namespace, split.service)
}

/// Where an object's metrics are served (the SDK's `selfLink`).
pub fn self_link(object: &ObjectReference) -> String {
    let plural = Kind::of_object_kind(&object.kind).map_or("", Kind::plural);
    if object.namespace.is_empty() {
        format!("{BASE_PATH}/{plural}/{}", object.name)
    } else {
        format!(
            "{BASE_PATH}/namespaces/{}/{plural}/{}",
            object.namespace, object.name
        )
    }
}

/// RFC 3339 in UTC, whole seconds (`2019-04-08T22:25:55Z`), as `metav1.Time` writes it.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}
