//! Request metrics of a workload: per-edge statistics recorded on the request path without a
//! shared lock, rendered as Prometheus text and reported to the control as deltas.
//!
//! Both sides record through the same layer, [`Record`], into one [`Metrics`] registry per
//! process. A series is keyed by (direction, peer identity, peer workload, peer pod, service,
//! backend, route, protocol, HTTP status, gRPC status) ([`EdgeLabels`] plus the answer); each
//! holds counts per outcome (`smi_core::telemetry::classify`; refusals by the mesh are
//! denials) and duration bucket (over both histograms' bounds: `smi_request_duration_seconds`'
//! and Istio's `istio_request_duration_milliseconds`', so one add serves both), the duration
//! sum, and a latency sketch of answered requests (`smi_core::telemetry::sketch`, taken by each
//! report).
//!
//! Recording a request looks its series up in a thread-local cache (no lock shared between
//! cores, no allocation; `cache`) and makes three relaxed atomic adds; the registry's lock is
//! taken only when a thread first sees a label set, and when rendering or reporting. The number
//! of series is capped ([`MAX_SERIES`]); past the cap, new series are counted in one `overflow`
//! series per direction.
//!
//! Prometheus families ([`Metrics::prometheus`]): `smi_requests_total` and
//! `smi_request_duration_seconds` (labels `destination`, `direction`, `route`, `source`,
//! `status`), both directions; inbound only, Istio's `istio_requests_total` and
//! `istio_request_duration_milliseconds` (`reporter="destination"`, the workload, namespace and
//! principal of each side, `response_code`, `destination_service_name`, `request_protocol`,
//! `grpc_response_status`, `connection_security_policy`), and on request OSM's
//! `osm_request_total` and `osm_request_duration_ms`.

mod bins;
mod cache;
mod deltas;
mod layer;
mod local;
mod prometheus;
mod registry;
mod schema;
mod series;
mod value;

#[cfg(test)]
mod tests;

pub use layer::{Record, RecordFuture, RecordLayer, ResponseStatus};
pub use local::{
    ISTIO_DURATION_BUCKETS_MS, LocalNames, MAX_DURATION_BUCKETS, MAX_SERIES, MetricsOptions,
};
pub use schema::{Direction, EdgeLabels, Labelled, Observation, PeerNames, Protocol, StringValue};

pub(crate) use deltas::EdgeDelta;

use std::sync::Arc;

use smi_core::ServiceRef;

use registry::Registry;

/// The process's request metrics (cheap to clone: clones share one registry).
#[derive(Clone, Debug)]
pub struct Metrics(Arc<Registry>);

/// One series' key and counts, as [`Metrics::series`] lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesSnapshot {
    pub direction: Direction,
    pub peer: Option<Arc<PeerNames>>,
    pub service: StringValue,
    pub backend: StringValue,
    pub route: StringValue,
    pub protocol: Protocol,
    pub status: u16,
    pub grpc_status: Option<u32>,
    pub success: u64,
    pub failure: u64,
    pub denied: u64,
    /// The series past [`MAX_SERIES`], where everything new is counted.
    pub overflow: bool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Metrics whose own names read `unknown` (a [`crate::Mesh`] makes its own with its names).
    pub fn new() -> Self {
        Self::with_options(LocalNames::unknown(), &MetricsOptions::default())
    }

    pub fn with_options(local: LocalNames, options: &MetricsOptions) -> Self {
        Self(Arc::new(Registry::new(local, options)))
    }

    /// Records one finished request. Takes it by reference: the labels' shared names are
    /// released by the caller, after.
    pub fn record(&self, o: &Observation) {
        self.0.record(o);
    }

    /// This workload's names, as the metrics label them.
    pub fn local(&self) -> &LocalNames {
        &self.0.local
    }

    /// The service of ours an inbound request's authority names (`namespace/name`, shared),
    /// or `unknown`: only services this workload serves are named.
    pub fn inbound_service(&self, authority: Option<&str>) -> StringValue {
        self.0.service_of(authority)
    }

    /// Every series with its counts since the start.
    pub fn series(&self) -> Vec<SeriesSnapshot> {
        self.0
            .all_series()
            .iter()
            .map(|s| {
                let [success, failure, denied] = s.counts().outcomes;
                SeriesSnapshot {
                    direction: s.key.direction,
                    peer: s.key.peer.clone(),
                    service: s.key.service.clone(),
                    backend: s.key.backend.clone(),
                    route: s.key.route.clone(),
                    protocol: s.key.protocol,
                    status: s.key.status,
                    grpc_status: s.key.grpc_status.map(u32::from),
                    success,
                    failure,
                    denied,
                    overflow: s.overflow,
                }
            })
            .collect()
    }

    /// Prometheus text exposition (version 0.0.4) of the current values.
    pub fn prometheus(&self) -> String {
        prometheus::render(&self.0)
    }

    /// The services our (renewed) certificate lets us serve.
    pub(crate) fn set_serves(&self, serves: &[ServiceRef]) {
        self.0.set_serves(serves);
    }

    /// Moves the deltas since the last drain into the backlog of the next report.
    pub(crate) fn drain(&self) {
        self.0.drain();
    }

    /// Takes up to `max` edges of the backlog (the oldest first); the rest wait.
    pub(crate) fn take_edges(&self, max: usize) -> Vec<EdgeDelta> {
        self.0.take_edges(max)
    }

    /// Returns taken edges that did not fit in a report to the backlog (merged with what was
    /// counted since), to go first next time.
    pub(crate) fn put_back(&self, edges: Vec<EdgeDelta>) {
        self.0.put_back(edges);
    }
}
