//! The per-request cost of recording a request's edge (`smi_client::metrics::Metrics::record`),
//! on a hit (the thread has seen the series before, the steady state): on one thread, and on
//! several threads at once, all into one series (every core adds to the same counters) or each
//! into its own (callers on different connections). Target: at most 50 ns per request.
//!
//! `record/hit` records prepared observations (durations varying, so that buckets and sketch
//! bins vary): the recording alone. `record/hit_with_labels` also builds each request's labels
//! as the layers do (shared names: a reference count each, no text copied) and drops them, for
//! comparison; `record/atomic_add` is one relaxed atomic add, the unit the recording costs
//! (three per request).
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use smi_client::metrics::{
    Direction, EdgeLabels, LocalNames, Metrics, MetricsOptions, Observation, PeerNames, Protocol,
    StringValue,
};
use smi_core::ServiceRef;
use smi_core::telemetry::Workload;

/// What an inbound request of one connection carries.
struct Edge {
    peer: Arc<PeerNames>,
    service: StringValue,
    route: StringValue,
}

impl Edge {
    fn new(caller: usize) -> Self {
        let identity = format!("spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer-{caller}");
        let pod = format!("bookbuyer-{caller}-7c4d9f8b5-kq2zt");
        let route: Arc<str> = "TrafficTarget bookstore/bookbuyer-access-bookstore rule 0 (HTTPRouteGroup bookstore-service-routes) match buy-a-book".into();
        let service: Arc<str> = "bookstore/bookstore".into();
        Self {
            peer: Arc::new(PeerNames::from_parts(
                &identity,
                "bookbuyer",
                &format!("bookbuyer-{caller}"),
                &pod,
            )),
            service: service.into(),
            route: route.into(),
        }
    }

    fn observation(&self, micros: u64) -> Observation {
        Observation {
            direction: Direction::Inbound,
            labels: EdgeLabels {
                peer: Some(self.peer.clone()),
                service: self.service.clone(),
                backend: StringValue::EMPTY,
                route: self.route.clone(),
                protocol: Protocol::Http,
                denied: false,
            },
            status: 200,
            grpc_status: None,
            duration: Duration::from_micros(micros),
        }
    }
}

fn metrics() -> Metrics {
    let Ok(identity) = "spiffe://cluster.local/ns/bookstore/sa/bookstore".parse() else {
        panic!("the bookstore's SPIFFE ID does not parse");
    };
    Metrics::with_options(
        LocalNames::new(
            &identity,
            Workload::new("bookstore", "bookstore-v1", "bookstore-v1-5d8f7c9b4-x2x7q"),
            vec![ServiceRef::new("bookstore", "bookstore")],
        ),
        &MetricsOptions::default(),
    )
}

fn one_thread(c: &mut Criterion) {
    let metrics = metrics();
    let edge = Edge::new(0);
    // Latencies from 0 to 20 ms: different sketch bins and buckets.
    let prepared: Vec<Observation> = (0..64).map(|i| edge.observation(i * 311)).collect();
    for o in &prepared {
        metrics.record(o);
    }
    let mut group = c.benchmark_group("record");
    let mut i = 0;
    group.bench_function("hit", |b| {
        b.iter(|| {
            i = (i + 1) % prepared.len();
            metrics.record(black_box(&prepared[i]));
        })
    });
    let mut micros = 0u64;
    group.bench_function("hit_with_labels", |b| {
        b.iter(|| {
            micros = (micros + 311) % 20_000;
            metrics.record(black_box(&edge.observation(micros)));
        })
    });
    let counter = AtomicU64::new(0);
    group.bench_function("atomic_add", |b| {
        b.iter(|| black_box(&counter).fetch_add(1, Ordering::Relaxed))
    });
    group.finish();
}

/// `threads` threads record `iters` requests each, started together; the time is the wall
/// time of the slowest, so the figure is the cost per request of each thread under contention.
fn concurrently(metrics: &Metrics, edges: &[Edge], iters: u64) -> Duration {
    let barrier = Barrier::new(edges.len());
    let times: Vec<Duration> = std::thread::scope(|scope| {
        let running: Vec<_> = edges
            .iter()
            .map(|edge| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let prepared: Vec<Observation> =
                        (0..64).map(|i| edge.observation(i * 311)).collect();
                    for o in &prepared {
                        metrics.record(o);
                    }
                    barrier.wait();
                    let started = Instant::now();
                    for i in 0..iters {
                        let o = &prepared[(i % 64) as usize];
                        metrics.record(black_box(o));
                    }
                    started.elapsed()
                })
            })
            .collect();
        running
            .into_iter()
            .map(|t| t.join().unwrap_or_default())
            .collect()
    });
    times.into_iter().max().unwrap_or_default()
}

fn threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("record_threads");
    for threads in [2, 4] {
        let metrics = metrics();
        let shared: Vec<Edge> = (0..threads).map(|_| Edge::new(0)).collect();
        group.bench_with_input(
            BenchmarkId::new("one_series", threads),
            &shared,
            |b, edges| b.iter_custom(|iters| concurrently(&metrics, edges, iters)),
        );
        let own: Vec<Edge> = (0..threads).map(Edge::new).collect();
        group.bench_with_input(
            BenchmarkId::new("series_each", threads),
            &own,
            |b, edges| b.iter_custom(|iters| concurrently(&metrics, edges, iters)),
        );
    }
    group.finish();
}

criterion_group!(benches, one_thread, threads);
criterion_main!(benches);
