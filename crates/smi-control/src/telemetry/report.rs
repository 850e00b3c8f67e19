//! A workload's report as the store takes it: checked, bounded and free of protobuf (read from
//! the wire in [`crate::wire::report`]).

use smi_core::telemetry::{Direction, LatencySketch, Workload};

/// One report of one instance: the deltas since its previous report.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Random per process: a restarted workload is a new instance.
    pub instance: String,
    /// 1 for an instance's first report, then one more per report; a retry repeats it.
    pub sequence: u64,
    /// The reporting workload: its names, in its identity's namespace.
    pub reporter: Workload,
    pub edges: Vec<EdgeReport>,
}

/// One edge's deltas.
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeReport {
    pub key: EdgeKey,
    pub counts: Counts,
    /// Latencies of the answered requests.
    pub latency: LatencySketch,
}

/// What tells one edge of a reporting workload from another: a series is (reporter, key).
/// Boxed strings: the store holds many keys, and a `Box<str>` is 16 bytes where a `String` is 24.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeKey {
    pub direction: Direction,
    /// The peer's SPIFFE ID (checked), empty when unknown (an outbound call that never connected).
    pub peer_identity: Box<str>,
    /// The peer's workload and pod names, in the peer identity's namespace; empty when unknown.
    pub peer_workload: Box<str>,
    pub peer_pod: Box<str>,
    /// Outbound: the service the request named (`ns/name`, the apex when split); inbound: the
    /// service of ours it named, or `unknown`.
    pub service: Box<str>,
    /// Outbound: the TrafficSplit backend chosen (`ns/name`), empty when not split.
    pub backend: Box<str>,
    pub route: Box<str>,
}

impl EdgeKey {
    /// The namespace of the peer's identity (empty when unknown).
    pub fn peer_namespace(&self) -> &str {
        self.peer_identity
            .split_once("/ns/")
            .and_then(|(_, rest)| rest.split_once('/'))
            .map_or("", |(ns, _)| ns)
    }

    /// The peer's ServiceAccount name (empty when unknown).
    pub fn peer_account(&self) -> &str {
        self.peer_identity
            .rsplit_once("/sa/")
            .map_or("", |(_, sa)| sa)
    }

    /// The heap bytes of its strings.
    pub fn heap_bytes(&self) -> usize {
        [
            &self.peer_identity,
            &self.peer_workload,
            &self.peer_pod,
            &self.service,
            &self.backend,
            &self.route,
        ]
        .iter()
        .map(|s| s.len())
        .sum()
    }
}

/// How the requests of an edge ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub success: u64,
    pub failure: u64,
    /// Refused by the mesh before the application saw them.
    pub denied: u64,
}

impl Counts {
    pub fn is_zero(&self) -> bool {
        self.success == 0 && self.failure == 0 && self.denied == 0
    }

    pub fn add(&mut self, other: Counts) {
        self.success = self.success.saturating_add(other.success);
        self.failure = self.failure.saturating_add(other.failure);
        self.denied = self.denied.saturating_add(other.denied);
    }
}
