//! [`TelemetryStore`]: every reporting pod's series, each a [`Ring`] of time slots.
//!
//! Bounded: series per reporting pod ([`StoreLimits::series_per_workload`]; new series beyond it
//! are dropped and counted), pods and remembered instances per identity
//! ([`InstanceLimits`]), an hour of slots per series. Expired slots, and series and pods left
//! with none, are removed by [`TelemetryStore::sweep`] (and slots also as their series is
//! written).
//!
//! One workload cannot stall another: pods are spread over [`SHARDS`] locks by their names; a
//! report takes its identity's lock, then its pod's, each for a few map operations on data
//! prepared before (sketches are packed outside the lock), and nothing awaits under either.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use smi_core::ServiceAccount;
use smi_core::telemetry::Workload;

use super::clock::Clock;
use super::instances::{Admission, InstanceLimits, Reporters};
use super::report::{EdgeKey, Report};
use super::ring::Ring;
use super::slot::SlotData;
use crate::quota::{Exceeded, Quotas};
use crate::status::Counters;

/// Locks the pods are spread over.
pub const SHARDS: usize = 64;

/// The store's bounds (from [`Quotas`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// Series one reporting pod (one [`Workload`]: namespace, name, pod) may hold.
    pub series_per_workload: usize,
    pub instances: InstanceLimits,
}

impl From<&Quotas> for StoreLimits {
    fn from(q: &Quotas) -> Self {
        Self {
            series_per_workload: q.telemetry_series_per_workload,
            instances: InstanceLimits {
                instances_per_identity: q.report_instances_per_identity,
                pods_per_identity: q.telemetry_pods_per_identity,
            },
        }
    }
}

/// What became of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ingested {
    /// Counted; `dropped` of its edges were new series over the pod's limit.
    Counted { dropped: usize },
    /// A report already counted (a retry), ignored.
    Repeated,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct TelemetryCounters {
    pub reports_counted: AtomicU64,
    pub reports_repeated: AtomicU64,
    pub reports_refused: AtomicU64,
    pub series_dropped: AtomicU64,
}

/// The series of one reporting pod.
type Series = HashMap<EdgeKey, Ring>;

/// Every pod's series, and who reported.
#[derive(Debug)]
pub struct TelemetryStore {
    clock: Arc<dyn Clock>,
    limits: StoreLimits,
    shards: Box<[Mutex<HashMap<Workload, Series>>]>,
    hasher: RandomState,
    reporters: Reporters,
    series: AtomicU64,
    pub counters: TelemetryCounters,
}

/// What the store holds, for `/metrics` and the benchmark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    pub pods: usize,
    pub series: usize,
    pub slots: usize,
    pub instances: usize,
    /// An estimate of the heap bytes of the pods' and series' maps (their allocated buckets),
    /// their keys' strings and the rings' slots; not the identity and instance tracking.
    pub bytes: usize,
}

impl TelemetryStore {
    pub fn new(clock: Arc<dyn Clock>, limits: StoreLimits) -> Self {
        Self {
            clock,
            limits,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            reporters: Reporters::new(limits.instances),
            series: AtomicU64::new(0),
            counters: TelemetryCounters::default(),
        }
    }

    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    pub(super) fn now_millis(&self) -> u64 {
        self.clock.now_millis()
    }

    /// Adds a report of `identity` (the caller's certificate's; `report.reporter` is in its
    /// namespace), unless it was counted before. Refused: a pod over the identity's limit.
    pub fn ingest(&self, identity: &ServiceAccount, report: Report) -> Result<Ingested, Exceeded> {
        let now = self.now_millis();
        if self.reporters.admit(identity, &report, now)? == Admission::Repeat {
            Counters::inc(&self.counters.reports_repeated);
            return Ok(Ingested::Repeated);
        }
        Counters::inc(&self.counters.reports_counted);
        // Packed before the lock is taken.
        let edges: Vec<(EdgeKey, SlotData)> = report
            .edges
            .into_iter()
            .filter(|e| !e.counts.is_zero() || !e.latency.is_empty())
            .map(|e| {
                let data = SlotData::new(e.counts, e.latency.bins().iter().copied());
                (e.key, data)
            })
            .collect();
        if edges.is_empty() {
            return Ok(Ingested::Counted { dropped: 0 });
        }
        let limit = self.limits.series_per_workload;
        let (mut added, mut dropped) = (0u64, 0usize);
        {
            let mut shard = self.shard(&report.reporter);
            let series = shard.entry(report.reporter).or_default();
            for (key, data) in edges {
                let held = series.len();
                if let Some(ring) = series.get_mut(&key) {
                    ring.add(now, data);
                } else if held < limit {
                    let mut ring = Ring::default();
                    ring.add(now, data);
                    series.insert(key, ring);
                    added += 1;
                } else {
                    dropped += 1;
                }
            }
        }
        self.series.fetch_add(added, Ordering::Relaxed);
        if dropped > 0 {
            self.counters
                .series_dropped
                .fetch_add(dropped as u64, Ordering::Relaxed);
        }
        Ok(Ingested::Counted { dropped })
    }

    /// Drops expired slots, then series and pods left empty, and forgets silent instances.
    /// The control runs it every few seconds; one shard is locked at a time.
    pub fn sweep(&self) {
        let now = self.now_millis();
        let mut removed = 0u64;
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            shard.retain(|_, series| {
                series.retain(|_, ring| {
                    ring.advance(now);
                    let keep = !ring.is_empty();
                    removed += u64::from(!keep);
                    keep
                });
                shrink(series);
                !series.is_empty()
            });
            shrink(&mut shard);
        }
        self.series.fetch_sub(removed, Ordering::Relaxed);
        self.reporters.sweep(now);
    }

    /// Series held now.
    pub fn series(&self) -> u64 {
        self.series.load(Ordering::Relaxed)
    }

    /// Counts what the store holds, and estimates its bytes (see [`Footprint::bytes`]).
    pub fn footprint(&self) -> Footprint {
        let mut f = Footprint {
            instances: self.reporters.instances(),
            ..Footprint::default()
        };
        for shard in self.shards.iter() {
            let shard = lock(shard);
            f.bytes += table_bytes(shard.capacity(), size_of::<(Workload, Series)>());
            for (workload, series) in shard.iter() {
                f.pods += 1;
                f.bytes += workload.namespace.capacity() + workload.name.capacity();
                f.bytes += workload.pod.capacity();
                f.bytes += table_bytes(series.capacity(), size_of::<(EdgeKey, Ring)>());
                for (key, ring) in series {
                    f.series += 1;
                    f.slots += ring.slots();
                    f.bytes += key.heap_bytes() + ring.heap_bytes();
                }
            }
        }
        f
    }

    /// Calls `visit` with each pod and its series, one shard locked at a time.
    pub(super) fn each_pod(&self, mut visit: impl FnMut(&Workload, &Series)) {
        for shard in self.shards.iter() {
            for (workload, series) in lock(shard).iter() {
                visit(workload, series);
            }
        }
    }

    fn shard(&self, pod: &Workload) -> MutexGuard<'_, HashMap<Workload, Series>> {
        let i = self.hasher.hash_one(pod) as usize % SHARDS;
        lock(&self.shards[i])
    }
}

/// Gives back most of a map's memory once it holds under a quarter of what it could: after a
/// burst of pods or series has expired.
fn shrink<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>) {
    if map.len() <= map.capacity() / 4 {
        map.shrink_to_fit();
    }
}

/// The bytes of a hashbrown table of `capacity` entries of `entry` bytes: its buckets (a power
/// of two, at most 7/8 full) and a control byte each.
fn table_bytes(capacity: usize, entry: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = (capacity * 8 / 7).next_power_of_two();
    buckets * (entry + 1)
}

/// Each change is a map operation, so a poisoned lock leaves the maps consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
