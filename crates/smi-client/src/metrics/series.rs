//! One series: the counters of every request with the same [`SeriesKey`], as atomics that the
//! request path adds to and the renderer and reporter read. Nothing here takes a lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};

use smi_core::telemetry::Outcome;
use smi_core::telemetry::sketch::BINS;

use super::schema::{Direction, Observation, PeerNames, Protocol, StringValue};

/// `smi_request_duration_seconds`' bounds: a proxyless hop is tens of microseconds, a slow
/// backend seconds.
pub(crate) const SECONDS_BOUNDS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    5.0,
];

/// The highest gRPC status code; anything above reads as Unknown (2), as gRPC prescribes, so
/// that a peer cannot mint series with made-up codes.
const GRPC_MAX: u32 = 16;

/// What distinguishes one series from another.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SeriesKey {
    pub(crate) direction: Direction,
    pub(crate) protocol: Protocol,
    /// Compared by contents, hashed by the contents' hash made once per connection.
    pub(crate) peer: Option<Arc<PeerNames>>,
    pub(crate) service: StringValue,
    pub(crate) backend: StringValue,
    pub(crate) route: StringValue,
    pub(crate) status: u16,
    pub(crate) grpc_status: Option<u8>,
}

impl SeriesKey {
    /// The key of an observation's series (the slow path: clones its shared names).
    pub(crate) fn of(o: &Observation) -> Self {
        let labels = &o.labels;
        Self {
            direction: o.direction,
            protocol: labels.protocol,
            peer: labels.peer.clone(),
            service: labels.service.clone(),
            backend: labels.backend.clone(),
            route: labels.route.clone(),
            status: o.status,
            grpc_status: grpc_code(o.grpc_status),
        }
    }

    /// The series everything past the cap is counted in.
    pub(crate) fn overflow(direction: Direction) -> Self {
        Self {
            direction,
            protocol: Protocol::Http,
            peer: None,
            service: "overflow".into(),
            backend: "overflow".into(),
            route: "overflow".into(),
            status: 0,
            grpc_status: None,
        }
    }
}

/// A gRPC status as series tell them apart.
pub(crate) fn grpc_code(status: Option<u32>) -> Option<u8> {
    status.map(|code| if code > GRPC_MAX { 2 } else { code as u8 })
}

pub(crate) fn outcome_index(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Success => 0,
        Outcome::Failure => 1,
        Outcome::Denied => 2,
    }
}

/// The counters of one series.
///
/// Both histograms (`smi_request_duration_seconds`, `istio_request_duration_milliseconds`) are
/// rendered from one set of buckets over the union of their bounds, kept per outcome: a request
/// adds to one bucket, the sum, and (if answered) one sketch bin. Three atomic adds.
#[derive(Debug)]
pub(crate) struct Series {
    pub(crate) key: SeriesKey,
    /// The series past the cap: its labels read `overflow`.
    pub(crate) overflow: bool,
    /// Requests by outcome (success, failure, denied) and duration bucket (the registry's
    /// bounds, then `+Inf`), not cumulative, since the start: `outcome * width + bucket`.
    buckets: Box<[AtomicU64]>,
    width: usize,
    /// On a cache line of its own: every request of the series, from every core, adds to it,
    /// and the fields around it are read by every request.
    sum_nanos: Padded,
    /// The latency sketch of answered requests since the last report took it.
    bins: Box<[AtomicU32]>,
    /// What the last report counted, by outcome (the reporter's, under its lock).
    reported: [AtomicU64; 3],
    /// Cleared when the registry is dropped, so that thread caches can let go of its series.
    pub(crate) alive: Arc<AtomicBool>,
}

/// An atomic alone on its cache line (two lines: x86 fetches them in pairs).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

/// A series' values at one moment, for rendering.
#[derive(Clone, Debug, Default)]
pub(crate) struct Counts {
    pub(crate) outcomes: [u64; 3],
    /// Per bucket of the registry's bounds (and `+Inf`), every outcome together.
    pub(crate) buckets: Vec<u64>,
    pub(crate) sum_nanos: u64,
}

/// What a report takes from a series: outcome counts since the last report, and the bins.
#[derive(Debug, Default)]
pub(crate) struct Delta {
    pub(crate) outcomes: [u64; 3],
    pub(crate) bins: Vec<(u16, u64)>,
}

impl Series {
    /// `buckets`: how many duration buckets (the bounds and `+Inf`).
    pub(crate) fn new(
        key: SeriesKey,
        overflow: bool,
        buckets: usize,
        alive: Arc<AtomicBool>,
    ) -> Self {
        Self {
            key,
            overflow,
            buckets: (0..3 * buckets).map(|_| AtomicU64::new(0)).collect(),
            width: buckets,
            sum_nanos: Padded::default(),
            bins: (0..BINS).map(|_| AtomicU32::new(0)).collect(),
            reported: Default::default(),
            alive,
        }
    }

    /// Counts one request in duration bucket `bucket`.
    pub(crate) fn add(&self, outcome: Outcome, bucket: usize, nanos: u64) {
        let at = outcome_index(outcome) * self.width + bucket.min(self.width.saturating_sub(1));
        if let Some(counter) = self.buckets.get(at) {
            counter.fetch_add(1, Relaxed);
        }
        self.sum_nanos.0.fetch_add(nanos, Relaxed);
    }

    /// Adds an answered request's latency (its sketch bin) to the sketch.
    pub(crate) fn add_latency(&self, bin: u16) {
        if let Some(bin) = self.bins.get(usize::from(bin)) {
            bin.fetch_add(1, Relaxed);
        }
    }

    fn outcomes(&self) -> [u64; 3] {
        let mut rows = self.buckets.chunks(self.width);
        [0, 1, 2].map(|_| {
            rows.next()
                .map_or(0, |row| row.iter().map(|c| c.load(Relaxed)).sum())
        })
    }

    pub(crate) fn counts(&self) -> Counts {
        let mut buckets = vec![0; self.width];
        for row in self.buckets.chunks(self.width) {
            for (total, counter) in buckets.iter_mut().zip(row) {
                *total += counter.load(Relaxed);
            }
        }
        Counts {
            outcomes: self.outcomes(),
            buckets,
            sum_nanos: self.sum_nanos.0.load(Relaxed),
        }
    }

    /// Takes what a report needs: outcome counts since the last take, and the sketch bins
    /// (swapped to zero). Call under the reporter's lock: one taker at a time.
    pub(crate) fn take_delta(&self) -> Delta {
        let now = self.outcomes();
        let outcomes =
            [0, 1, 2].map(|i| now[i].wrapping_sub(self.reported[i].swap(now[i], Relaxed)));
        let bins = self
            .bins
            .iter()
            .enumerate()
            .filter(|(_, bin)| bin.load(Relaxed) != 0)
            .map(|(i, bin)| (i as u16, u64::from(bin.swap(0, Relaxed))))
            .filter(|(_, count)| *count > 0)
            .collect();
        Delta { outcomes, bins }
    }
}
