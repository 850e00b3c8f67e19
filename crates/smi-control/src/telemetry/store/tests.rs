use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use smi_core::ServiceAccount;
use smi_core::telemetry::{Direction, LatencySketch, Workload};

use super::*;
use crate::quota::Quotas;
use crate::telemetry::Totals;
use crate::telemetry::clock::ManualClock;
use crate::telemetry::report::{Counts, EdgeReport};
use crate::telemetry::ring::SPAN;

/// A minute boundary, so that slots line up with the test's steps.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_040)
}

fn store_with(quotas: Quotas) -> (Arc<ManualClock>, TelemetryStore) {
    let clock = Arc::new(ManualClock::new(t0()));
    let store = TelemetryStore::new(clock.clone(), StoreLimits::from(&quotas));
    (clock, store)
}

fn store() -> (Arc<ManualClock>, TelemetryStore) {
    store_with(Quotas::default())
}

fn identity() -> ServiceAccount {
    ServiceAccount::new("shop", "web")
}

fn pod(name: &str) -> Workload {
    Workload::new("shop", "web", name)
}

fn edge(peer: &str, success: u64, latency_ms: &[u64]) -> EdgeReport {
    let mut latency = LatencySketch::new();
    for ms in latency_ms {
        latency.record(Duration::from_millis(*ms));
    }
    EdgeReport {
        key: EdgeKey {
            direction: Direction::Inbound,
            peer_identity: format!("spiffe://cluster.local/ns/shop/sa/{peer}").into(),
            peer_workload: peer.into(),
            peer_pod: format!("{peer}-0").into(),
            service: "shop/web".into(),
            backend: "".into(),
            route: "shop/web-access/all".into(),
        },
        counts: Counts {
            success,
            failure: 1,
            denied: 0,
        },
        latency,
    }
}

fn report(pod_name: &str, instance: &str, sequence: u64, edges: Vec<EdgeReport>) -> Report {
    Report {
        instance: instance.into(),
        sequence,
        reporter: pod(pod_name),
        edges,
    }
}

/// The deployment's inbound totals over `window`.
fn web(store: &TelemetryStore, window: Duration) -> Totals {
    store
        .totals(window, |w| w.name == "web", |_, _| Some(()))
        .remove(&())
        .unwrap_or_default()
}

const W30: Duration = Duration::from_secs(30);

#[test]
fn a_report_counts_once_per_instance_and_sequence() {
    let (_, store) = store();
    let ingest = |instance, sequence| {
        store
            .ingest(
                &identity(),
                report("web-0", instance, sequence, vec![edge("db", 10, &[5])]),
            )
            .unwrap()
    };
    assert_eq!(ingest("a", 1), Ingested::Counted { dropped: 0 });
    assert_eq!(ingest("a", 1), Ingested::Repeated, "a retry");
    assert_eq!(ingest("a", 2), Ingested::Counted { dropped: 0 });
    assert_eq!(
        ingest("a", 1),
        Ingested::Repeated,
        "older than the last counted"
    );
    // A restarted process is a new instance, starting at 1 again.
    assert_eq!(ingest("b", 1), Ingested::Counted { dropped: 0 });
    assert_eq!(web(&store, W30).counts.success, 30);
    let c = &store.counters;
    assert_eq!(c.reports_counted.load(Ordering::Relaxed), 3);
    assert_eq!(c.reports_repeated.load(Ordering::Relaxed), 2);
}

#[test]
fn windows_read_the_recent_slots_and_longer_ones_minute_slots() {
    let (clock, store) = store();
    for i in 0..24u64 {
        let r = report("web-0", "a", i + 1, vec![edge("db", 1, &[10])]);
        store.ingest(&identity(), r).unwrap();
        clock.advance(Duration::from_secs(5));
    }
    // Two minutes of one request per 5 s.
    assert_eq!(web(&store, W30).counts.success, 6);
    assert_eq!(web(&store, Duration::from_secs(60)).counts.success, 12);
    assert_eq!(web(&store, SPAN).counts.success, 24);
    clock.advance(Duration::from_secs(10 * 60));
    store.sweep();
    assert_eq!(web(&store, W30).counts.success, 0);
    assert_eq!(web(&store, SPAN).counts.success, 24, "folded into minutes");
    assert_eq!(store.footprint().slots, 2);
}

#[test]
fn series_expire_after_the_span_and_are_evicted() {
    let (clock, store) = store();
    store
        .ingest(
            &identity(),
            report("web-0", "a", 1, vec![edge("db", 1, &[1])]),
        )
        .unwrap();
    assert_eq!(store.series(), 1);
    clock.advance(SPAN - Duration::from_secs(60));
    store.sweep();
    assert_eq!(store.footprint().series, 1);
    assert_eq!(store.reporters(|_| true).len(), 1);
    clock.advance(Duration::from_secs(120));
    assert!(
        store.reporters(|_| true).is_empty(),
        "expired, before the sweep"
    );
    store.sweep();
    assert_eq!(store.series(), 0);
    assert_eq!(store.footprint(), Footprint::default());
}

#[test]
fn new_series_past_a_pods_limit_are_dropped_and_counted() {
    let (_, store) = store_with(Quotas {
        telemetry_series_per_workload: 2,
        ..Quotas::default()
    });
    let edges = vec![edge("a", 1, &[]), edge("b", 1, &[]), edge("c", 1, &[])];
    let ingested = store
        .ingest(&identity(), report("web-0", "i", 1, edges))
        .unwrap();
    assert_eq!(ingested, Ingested::Counted { dropped: 1 });
    // The series held go on; another pod has its own limit.
    let again = vec![edge("a", 1, &[]), edge("c", 1, &[])];
    store
        .ingest(&identity(), report("web-0", "i", 2, again))
        .unwrap();
    store
        .ingest(
            &identity(),
            report("web-1", "j", 1, vec![edge("c", 1, &[])]),
        )
        .unwrap();
    assert_eq!(store.series(), 3);
    assert_eq!(store.counters.series_dropped.load(Ordering::Relaxed), 2);
    assert!(
        store
            .prometheus()
            .contains("smi_control_telemetry_series_dropped_total 2\n")
    );
    assert_eq!(web(&store, W30).counts.success, 4);
}

#[test]
fn pods_and_instances_are_bounded_per_identity() {
    let (clock, store) = store_with(Quotas {
        telemetry_pods_per_identity: 2,
        report_instances_per_identity: 2,
        ..Quotas::default()
    });
    let one = |pod: &str, instance: &str, sequence| {
        store.ingest(
            &identity(),
            report(pod, instance, sequence, vec![edge("db", 1, &[])]),
        )
    };
    one("web-0", "a", 1).unwrap();
    one("web-1", "b", 1).unwrap();
    let refused = one("web-2", "c", 1).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("pods reporting telemetry as shop/web"),
        "{refused}"
    );
    // Another identity is not affected.
    let other = ServiceAccount::new("shop", "db");
    let theirs = Report {
        reporter: Workload::new("shop", "db", "db-0"),
        ..report("web-0", "z", 1, vec![edge("web", 1, &[])])
    };
    assert!(store.ingest(&other, theirs).is_ok());
    // A third instance of a known pod pushes out the one heard from longest ago...
    clock.advance(Duration::from_secs(1));
    one("web-1", "b", 2).unwrap();
    clock.advance(Duration::from_secs(1));
    one("web-1", "c", 1).unwrap();
    clock.advance(Duration::from_secs(1));
    // ... so a's retry counts again: the price of the bound.
    assert_eq!(
        one("web-0", "a", 1).unwrap(),
        Ingested::Counted { dropped: 0 }
    );
    // (which pushed out b, now the oldest; c is remembered)
    assert_eq!(one("web-1", "c", 1).unwrap(), Ingested::Repeated);
    // A pod silent for the span frees its place.
    clock.advance(SPAN / 2);
    one("web-1", "b", 3).unwrap();
    assert!(one("web-2", "c", 2).is_err());
    clock.advance(SPAN / 2);
    assert!(one("web-2", "d", 1).is_ok());
}

#[test]
fn sketches_merge_across_pods_instances_and_slots() {
    let (clock, store) = store();
    let mut all = LatencySketch::new();
    for (i, pod_name) in ["web-0", "web-1", "web-2"].iter().enumerate() {
        for step in 0..3u64 {
            let ms: Vec<u64> = (1..=100).map(|n| n * (i as u64 + 1) + step).collect();
            for m in &ms {
                all.record(Duration::from_millis(*m));
            }
            let r = report(pod_name, pod_name, step + 1, vec![edge("db", 100, &ms)]);
            store.ingest(&identity(), r).unwrap();
        }
        clock.advance(Duration::from_secs(5));
    }
    let totals = web(&store, W30);
    assert_eq!(totals.counts.success, 900);
    assert_eq!(totals.counts.failure, 9);
    assert_eq!(totals.latency, all);
    for q in [0.5, 0.9, 0.99] {
        assert_eq!(totals.latency.quantile(q), all.quantile(q));
    }
    // By pod: each its own.
    let by_pod = store.totals(W30, |_| true, |w, _| Some(w.pod.clone()));
    assert_eq!(by_pod.len(), 3);
    assert!(by_pod.values().all(|t| t.counts.success == 300));
}

#[test]
fn empty_edges_create_nothing_and_the_footprint_counts_what_is_held() {
    let (_, store) = store();
    let quiet = EdgeReport {
        counts: Counts::default(),
        latency: LatencySketch::new(),
        ..edge("db", 0, &[])
    };
    store
        .ingest(&identity(), report("web-0", "a", 1, vec![quiet]))
        .unwrap();
    assert_eq!(store.footprint().pods, 0);
    let ms: Vec<u64> = (1..=50).map(|n| n * 3).collect();
    let edges = (0..3)
        .map(|i| edge(&format!("peer-{i}"), 50, &ms))
        .collect();
    store
        .ingest(&identity(), report("web-0", "a", 2, edges))
        .unwrap();
    let f = store.footprint();
    assert_eq!((f.pods, f.series, f.slots, f.instances), (1, 3, 3, 1));
    // A few hundred bytes a series: the key's strings and maps, one slot of about 50 bins.
    let per_series = f.bytes / f.series;
    assert!(
        (300..2_000).contains(&per_series),
        "{per_series} bytes per series"
    );
}
