//! The registry: every series of a process (bounded), this workload's names, and the deltas
//! waiting for the next report to the control.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use smi_core::ServiceRef;
use smi_core::telemetry::sketch::BINS;
use smi_core::telemetry::{Direction, Outcome, classify};

use super::bins::{self, bin_of_nanos};
use super::cache;
use super::deltas::{Backlog, EdgeDelta, EdgeKey};
use super::local::{LocalNames, MetricsOptions, Served, millis_bounds, served, service_of};
use super::schema::{Observation, StringValue};
use super::series::{SECONDS_BOUNDS, Series, SeriesKey};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Debug)]
pub(crate) struct Registry {
    /// Tells this registry's series apart from another's in the thread caches.
    id: u64,
    pub(crate) local: LocalNames,
    served: ArcSwap<Vec<Served>>,
    /// The duration buckets' bounds, nanoseconds: both histograms' bounds together.
    bounds: Box<[u64]>,
    /// For each sketch bin, the first bucket its durations can fall in (a request's bucket is
    /// found from its bin and a comparison or two, not a search).
    bin_bucket: Box<[u8]>,
    /// The seconds histogram: its bounds' text and their indexes in `bounds`.
    pub(crate) seconds: Histogram,
    /// The milliseconds histogram (Istio's, OSM's), likewise.
    pub(crate) millis: Histogram,
    pub(crate) osm: bool,
    max_series: usize,
    series: Mutex<SeriesSet>,
    backlog: Mutex<Backlog>,
    /// Shared by every series; cleared on drop.
    alive: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
struct SeriesSet {
    by_key: hashbrown::HashMap<SeriesKey, Arc<Series>>,
    /// Series per direction (inbound, outbound): each direction has half the cap, so that
    /// answers from a hostile upstream (any status code) cannot push the inbound series that
    /// Flagger reads into `overflow`.
    per_direction: [usize; 2],
    /// Every series (with the overflow ones), in creation order.
    list: Vec<Arc<Series>>,
    overflow: [Option<Arc<Series>>; 2],
}

/// One histogram's bounds, rendered, and where each is in the registry's buckets.
#[derive(Debug)]
pub(crate) struct Histogram {
    pub(crate) les: Box<[String]>,
    pub(crate) at: Box<[usize]>,
}

impl Histogram {
    fn new(bounds: &[u64], own: &[(u64, f64)]) -> Self {
        Self {
            les: own.iter().map(|(_, le)| le.to_string()).collect(),
            at: own
                .iter()
                .map(|(nanos, _)| bounds.partition_point(|b| b < nanos))
                .collect(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counters stay usable after a panic elsewhere: nothing here leaves them half-updated.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Registry {
    pub(crate) fn new(local: LocalNames, options: &MetricsOptions) -> Self {
        bins::warm_up();
        let nanos = |value: f64, unit: f64| (value * unit).round() as u64;
        let seconds: Vec<(u64, f64)> = SECONDS_BOUNDS.iter().map(|&s| (nanos(s, 1e9), s)).collect();
        let millis: Vec<(u64, f64)> = millis_bounds(&options.duration_buckets_ms)
            .into_iter()
            .map(|ms| (nanos(ms, 1e6), ms))
            .collect();
        let mut bounds: Vec<u64> = seconds.iter().chain(&millis).map(|(n, _)| *n).collect();
        bounds.sort_unstable();
        bounds.dedup();
        let bin_bucket = (0..BINS)
            .map(|bin| {
                let lower = bins::lower_nanos(bin);
                u8::try_from(bounds.partition_point(|&b| b < lower)).unwrap_or(u8::MAX)
            })
            .collect();
        Self {
            id: NEXT_ID.fetch_add(1, Relaxed),
            served: ArcSwap::from_pointee(served(&local.serves)),
            local,
            seconds: Histogram::new(&bounds, &seconds),
            millis: Histogram::new(&bounds, &millis),
            bounds: bounds.into(),
            bin_bucket,
            osm: options.osm,
            max_series: options.max_series,
            series: Mutex::default(),
            backlog: Mutex::default(),
            alive: Arc::new(AtomicBool::new(true)),
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Counts one request: a thread-cache lookup and three atomic adds; no lock, no allocation
    /// once this thread has seen the series.
    pub(crate) fn record(&self, o: &Observation) {
        let outcome = if o.labels.denied {
            Outcome::Denied
        } else {
            classify(o.status, o.grpc_status)
        };
        let nanos = u64::try_from(o.duration.as_nanos()).unwrap_or(u64::MAX);
        let bin = bin_of_nanos(nanos);
        let mut bucket = self
            .bin_bucket
            .get(usize::from(bin))
            .map_or(0, |&b| usize::from(b));
        while self.bounds.get(bucket).is_some_and(|&bound| bound < nanos) {
            bucket += 1;
        }
        // The sketch holds answered requests: not errors without a response, not refusals.
        let answered = o.status != 0 && outcome != Outcome::Denied;
        cache::with_series(self, o, |series| {
            series.add(outcome, bucket, nanos);
            if answered {
                series.add_latency(bin);
            }
        });
    }

    /// The series of `key`, made if it is new (the slow path: under the registry's lock).
    pub(crate) fn series_for(&self, key: &SeriesKey) -> Arc<Series> {
        let mut set = lock(&self.series);
        if let Some(series) = set.by_key.get(key) {
            return series.clone();
        }
        let buckets = self.bounds.len() + 1;
        let slot = usize::from(key.direction == Direction::Outbound);
        if set.per_direction[slot] < self.max_series.div_ceil(2) {
            let series = Arc::new(Series::new(key.clone(), false, buckets, self.alive.clone()));
            set.by_key.insert(key.clone(), series.clone());
            set.list.push(series.clone());
            set.per_direction[slot] += 1;
            return series;
        }
        if let Some(series) = &set.overflow[slot] {
            return series.clone();
        }
        tracing::warn!(
            max = self.max_series,
            "too many metric series; counting new ones as `overflow`"
        );
        let series = Arc::new(Series::new(
            SeriesKey::overflow(key.direction),
            true,
            buckets,
            self.alive.clone(),
        ));
        set.overflow[slot] = Some(series.clone());
        set.list.push(series.clone());
        series
    }

    /// Every series, for rendering and reporting (a copy of the list, under the lock briefly).
    pub(crate) fn all_series(&self) -> Vec<Arc<Series>> {
        lock(&self.series).list.clone()
    }

    pub(crate) fn service_of(&self, authority: Option<&str>) -> StringValue {
        service_of(
            &self.served.load(),
            &self.local.workload.namespace,
            authority,
        )
    }

    pub(crate) fn set_serves(&self, serves: &[ServiceRef]) {
        self.served.store(Arc::new(served(serves)));
    }

    /// Moves what every series counted since the last drain into the backlog (per edge).
    pub(crate) fn drain(&self) {
        let list = self.all_series();
        let mut backlog = lock(&self.backlog);
        backlog.tick += 1;
        let tick = backlog.tick;
        for series in list {
            let delta = series.take_delta();
            if delta.outcomes == [0; 3] && delta.bins.is_empty() {
                continue;
            }
            backlog
                .edges
                .entry(EdgeKey::of(&series.key))
                .or_insert_with_key(|key| EdgeDelta::new(key.clone(), tick))
                .add(&delta);
        }
    }

    /// Takes up to `max` edges from the backlog, those waiting longest first; the rest wait.
    pub(crate) fn take_edges(&self, max: usize) -> Vec<EdgeDelta> {
        let mut backlog = lock(&self.backlog);
        let mut edges: Vec<EdgeDelta> = backlog.edges.drain().map(|(_, e)| e).collect();
        edges.sort_by_key(|e| e.since);
        if edges.len() > max {
            for rest in edges.split_off(max) {
                backlog.edges.insert(rest.key.clone(), rest);
            }
        }
        edges
    }
}

impl Registry {
    pub(crate) fn put_back(&self, edges: Vec<EdgeDelta>) {
        let mut backlog = lock(&self.backlog);
        for edge in edges {
            match backlog.edges.entry(edge.key.clone()) {
                hashbrown::hash_map::Entry::Occupied(mut waiting) => {
                    waiting.get_mut().merge(edge);
                }
                hashbrown::hash_map::Entry::Vacant(slot) => {
                    slot.insert(edge);
                }
            }
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.alive.store(false, Relaxed);
    }
}
