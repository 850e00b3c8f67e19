//! What waits for the next report: per edge (a series without its statuses), the counts and
//! the latency sketch since the last report took them. Bounded by the number of series.

use std::sync::Arc;

use smi_core::telemetry::{Direction, LatencySketch};

use super::schema::{PeerNames, StringValue};
use super::series::{Delta, SeriesKey};

/// An edge, as reports carry it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct EdgeKey {
    pub(crate) direction: Direction,
    pub(crate) peer: Option<Arc<PeerNames>>,
    pub(crate) service: StringValue,
    pub(crate) backend: StringValue,
    pub(crate) route: StringValue,
}

impl EdgeKey {
    pub(crate) fn of(series: &SeriesKey) -> Self {
        Self {
            direction: series.direction,
            peer: series.peer.clone(),
            service: series.service.clone(),
            backend: series.backend.clone(),
            route: series.route.clone(),
        }
    }
}

/// One edge's statistics since the last report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EdgeDelta {
    pub(crate) key: EdgeKey,
    pub(crate) success: u64,
    pub(crate) failure: u64,
    pub(crate) denied: u64,
    pub(crate) latency: LatencySketch,
    /// The drain that first put it in the backlog: the oldest go first.
    pub(crate) since: u64,
}

impl EdgeDelta {
    pub(crate) fn new(key: EdgeKey, since: u64) -> Self {
        Self {
            key,
            success: 0,
            failure: 0,
            denied: 0,
            latency: LatencySketch::new(),
            since,
        }
    }

    /// Adds an earlier delta of the same edge (it keeps the earlier `since`).
    pub(crate) fn merge(&mut self, earlier: EdgeDelta) {
        self.success += earlier.success;
        self.failure += earlier.failure;
        self.denied += earlier.denied;
        self.latency.merge(&earlier.latency);
        self.since = self.since.min(earlier.since);
    }

    pub(crate) fn add(&mut self, delta: &Delta) {
        let [success, failure, denied] = delta.outcomes;
        self.success = self.success.saturating_add(success);
        self.failure = self.failure.saturating_add(failure);
        self.denied = self.denied.saturating_add(denied);
        for &(bin, count) in &delta.bins {
            self.latency.add(bin, count);
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Backlog {
    /// Counts drains.
    pub(crate) tick: u64,
    pub(crate) edges: hashbrown::HashMap<EdgeKey, EdgeDelta>,
}
