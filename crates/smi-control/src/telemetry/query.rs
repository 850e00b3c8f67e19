//! Reading the store: windows of series summed into groups the caller chooses (a deployment, a
//! peer, a split backend), sketches merged across instances, pods and slots at query time.
//!
//! Each shard is locked in turn, only while its matching series are summed; the caller's
//! closures run under that lock, so they only pick and name groups.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use smi_core::telemetry::{LatencySketch, Workload};

use super::report::{Counts, EdgeKey};
use super::store::TelemetryStore;

/// What a group of series adds up to over a window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    pub counts: Counts,
    /// Latencies of the answered requests.
    pub latency: LatencySketch,
}

impl Totals {
    pub fn add(&mut self, counts: Counts, bins: impl Iterator<Item = (u16, u64)>) {
        self.counts.add(counts);
        for (bin, count) in bins {
            self.latency.add(bin, count);
        }
    }

    pub fn merge(&mut self, other: &Totals) {
        self.counts.add(other.counts);
        self.latency.merge(&other.latency);
    }

    /// Every request: answered (success or failure) and denied.
    pub fn requests(&self) -> u64 {
        let c = &self.counts;
        c.success.saturating_add(c.failure).saturating_add(c.denied)
    }
}

impl TelemetryStore {
    /// The pods with live series that `keep` selects, sorted.
    pub fn reporters(&self, keep: impl Fn(&Workload) -> bool) -> BTreeSet<Workload> {
        let now = self.now_millis();
        let mut found = BTreeSet::new();
        self.each_pod(|workload, series| {
            if keep(workload) && series.values().any(|ring| ring.live(now)) {
                found.insert(workload.clone());
            }
        });
        found
    }

    /// The sums over the `window` ending now of the series of the pods `keep` selects, in the
    /// groups `group` puts them in (`None`: not counted).
    pub fn totals<G: Ord>(
        &self,
        window: Duration,
        keep: impl Fn(&Workload) -> bool,
        group: impl Fn(&Workload, &EdgeKey) -> Option<G>,
    ) -> BTreeMap<G, Totals> {
        let now = self.now_millis();
        let mut groups: BTreeMap<G, Totals> = BTreeMap::new();
        self.each_pod(|workload, series| {
            if !keep(workload) {
                return;
            }
            for (key, ring) in series {
                if let Some(g) = group(workload, key) {
                    ring.read(now, window, groups.entry(g).or_default());
                }
            }
        });
        groups
    }
}
