use std::sync::Arc;
use std::time::{Duration, Instant};

use smi_core::telemetry::Workload;

use super::*;
use crate::metrics::{EdgeLabels, Observation, PeerNames};

fn metrics() -> Metrics {
    Metrics::new()
}

fn record(metrics: &Metrics, route: &'static str, status: u16) {
    metrics.record(&Observation {
        direction: Direction::Outbound,
        labels: EdgeLabels {
            peer: Some(Arc::new(PeerNames::from_parts(
                "spiffe://cluster.local/ns/bookstore/sa/bookstore",
                "bookstore",
                "bookstore-v1",
                "bookstore-v1-0",
            ))),
            service: "bookstore/bookstore".into(),
            backend: "bookstore/bookstore-v1".into(),
            route: route.into(),
            ..EdgeLabels::default()
        },
        status,
        grpc_status: None,
        duration: Duration::from_millis(3),
    });
}

fn reporter(max_edges: usize) -> (Reporter, Instant) {
    let start = Instant::now();
    let workload = Workload::new("bookbuyer", "bookbuyer", "bookbuyer-0");
    (Reporter::new(&workload, start, max_edges), start)
}

#[test]
fn a_failed_report_is_sent_again_unchanged_before_anything_newer() {
    let metrics = metrics();
    let (mut reporter, start) = reporter(MAX_EDGES_PER_REPORT);
    record(&metrics, "sent", 200);
    record(&metrics, "sent", 503);
    metrics.drain();
    let first = reporter
        .next(&metrics, start + Duration::from_secs(5))
        .cloned()
        .unwrap();
    assert_eq!(first.sequence, 1);
    assert_eq!(first.interval_millis, 5_000);
    assert_eq!(first.instance_id.len(), 32);
    let names = first.names.clone().unwrap();
    assert_eq!(
        (names.workload.as_str(), names.pod.as_str()),
        ("bookbuyer", "bookbuyer-0")
    );
    let edge = &first.edges[0];
    assert_eq!(edge.direction, v1::Direction::Outbound as i32);
    assert_eq!((edge.success, edge.failure, edge.denied), (1, 1, 0));
    assert_eq!(
        (edge.peer_workload.as_str(), edge.backend.as_str()),
        ("bookstore-v1", "bookstore/bookstore-v1")
    );
    assert_eq!(edge.latency_counts.iter().sum::<u64>(), 2);
    assert_eq!(edge.latency_bins.len(), edge.latency_counts.len());

    // Not delivered: more traffic meanwhile waits; the same report goes again.
    record(&metrics, "sent", 200);
    metrics.drain();
    let again = reporter
        .next(&metrics, start + Duration::from_secs(10))
        .cloned();
    assert_eq!(again.as_ref(), Some(&first));

    reporter.delivered();
    let second = reporter
        .next(&metrics, start + Duration::from_secs(15))
        .cloned()
        .unwrap();
    assert_eq!(second.sequence, 2);
    assert_eq!(second.instance_id, first.instance_id);
    assert_eq!(second.interval_millis, 10_000);
    assert_eq!((second.edges[0].success, second.edges[0].failure), (1, 0));
    reporter.delivered();
    // Nothing new: no report, and no sequence number spent.
    metrics.drain();
    assert!(
        reporter
            .next(&metrics, start + Duration::from_secs(20))
            .is_none()
    );
    record(&metrics, "sent", 200);
    metrics.drain();
    let third = reporter
        .next(&metrics, start + Duration::from_secs(25))
        .unwrap();
    assert_eq!((third.sequence, third.interval_millis), (3, 5_000));
}

#[test]
fn a_report_carries_a_bounded_number_of_edges() {
    let metrics = metrics();
    let (mut reporter, start) = reporter(2);
    for route in ["a", "b", "c", "d", "e"] {
        record(&metrics, route, 200);
    }
    metrics.drain();
    let mut seen = Vec::new();
    for sequence in 1..=3 {
        let report = reporter.next(&metrics, start).cloned().unwrap();
        assert_eq!(report.sequence, sequence);
        assert!(report.edges.len() <= 2);
        seen.extend(report.edges.into_iter().map(|e| e.route));
        reporter.delivered();
    }
    seen.sort();
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    assert!(reporter.next(&metrics, start).is_none());
}

#[test]
fn instances_have_their_own_ids() {
    let (a, _) = reporter(1);
    let (b, _) = reporter(1);
    assert_ne!(a.instance_id, b.instance_id);
}

#[test]
fn only_refusals_of_the_report_itself_drop_it() {
    use super::refuses_for_good;
    for dropped in [
        tonic::Code::InvalidArgument,
        tonic::Code::PermissionDenied,
        tonic::Code::Unimplemented,
    ] {
        assert!(refuses_for_good(dropped), "{dropped:?}");
    }
    for retried in [
        tonic::Code::Unavailable,
        tonic::Code::DeadlineExceeded,
        tonic::Code::ResourceExhausted,
        tonic::Code::Unauthenticated,
        tonic::Code::Internal,
    ] {
        assert!(!refuses_for_good(retried), "{retried:?}");
    }
}

#[test]
fn a_busy_workloads_report_is_split_to_fit_the_controls_request_limit() {
    let metrics = metrics();
    let (mut reporter, start) = reporter(MAX_EDGES_PER_REPORT);
    // 400 edges of about 300 latency bins each: more than one report can carry.
    for route in 0..400 {
        let route: &'static str = Box::leak(format!("route {route}").into_boxed_str());
        for micros in 0..300u64 {
            metrics.record(&Observation {
                direction: Direction::Outbound,
                labels: EdgeLabels {
                    route: route.into(),
                    ..EdgeLabels::default()
                },
                status: 200,
                grpc_status: None,
                duration: Duration::from_micros(100 + micros * micros),
            });
        }
    }
    metrics.drain();
    let mut edges = 0;
    let mut reports = 0;
    let mut at = start;
    while let Some(report) = reporter.next(&metrics, at).cloned() {
        assert!(
            prost::Message::encoded_len(&report) <= MAX_REPORT_BYTES + 1024,
            "report {} is {} bytes",
            report.sequence,
            prost::Message::encoded_len(&report)
        );
        edges += report.edges.len();
        reports += 1;
        reporter.delivered();
        at += Duration::from_secs(5);
    }
    assert_eq!(edges, 400);
    assert!(reports > 1, "{reports} report(s)");
}
