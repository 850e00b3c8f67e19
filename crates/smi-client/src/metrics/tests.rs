#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use smi_core::telemetry::Workload;
use smi_core::{ServiceRef, SpiffeId};

use super::*;

fn store() -> LocalNames {
    let id: SpiffeId = "spiffe://cluster.local/ns/bookstore/sa/bookstore"
        .parse()
        .unwrap();
    LocalNames::new(
        &id,
        Workload::new("bookstore", "bookstore-v1", "bookstore-v1-5d8f7c9b4-x2x7q"),
        vec![ServiceRef::new("bookstore", "bookstore")],
    )
}

fn buyer() -> Arc<PeerNames> {
    let id: SpiffeId = "spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer"
        .parse()
        .unwrap();
    Arc::new(PeerNames::new(
        &id,
        Some(&Workload::new(
            "bookbuyer",
            "bookbuyer",
            "bookbuyer-7c4d9f8b5-kq2zt",
        )),
    ))
}

fn inbound(route: &'static str, status: u16, micros: u64) -> Observation {
    Observation {
        direction: Direction::Inbound,
        labels: EdgeLabels {
            peer: Some(buyer()),
            service: "bookstore/bookstore".into(),
            route: route.into(),
            ..EdgeLabels::default()
        },
        status,
        grpc_status: None,
        duration: Duration::from_micros(micros),
    }
}

fn denied() -> Observation {
    let mut o = inbound("denied", 403, 20);
    o.labels.denied = true;
    o
}

fn line<'a>(text: &'a str, prefix: &str, has: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(prefix) && l.contains(has))
        .unwrap_or_else(|| panic!("no {prefix} line with {has}:\n{text}"))
}

/// The label names of a rendered line.
fn label_names(line: &str) -> BTreeSet<String> {
    let inside = &line[line.find('{').unwrap() + 1..line.rfind('}').unwrap()];
    inside
        .split("\",")
        .map(|pair| pair.split_once('=').unwrap().0.to_owned())
        .collect()
}

#[test]
fn requests_are_counted_per_series_and_outcome() {
    let metrics = Metrics::with_options(store(), &MetricsOptions::default());
    metrics.record(&inbound("rule buy", 200, 300));
    metrics.record(&inbound("rule buy", 200, 300));
    metrics.record(&inbound("rule buy", 503, 300));
    metrics.record(&denied());
    let mut grpc = inbound("rule buy", 200, 300);
    grpc.labels.protocol = Protocol::Grpc;
    grpc.grpc_status = Some(14);
    metrics.record(&grpc);
    let series = metrics.series();
    let find = |status, protocol| {
        series
            .iter()
            .find(|s| s.status == status && s.protocol == protocol)
            .unwrap()
    };
    let ok = find(200, Protocol::Http);
    assert_eq!((ok.success, ok.failure, ok.denied), (2, 0, 0));
    assert_eq!(ok.peer.as_deref().unwrap().workload(), "bookbuyer");
    assert_eq!(find(503, Protocol::Http).failure, 1);
    assert_eq!(find(403, Protocol::Http).denied, 1);
    let unavailable = find(200, Protocol::Grpc);
    assert_eq!(
        (unavailable.failure, unavailable.grpc_status),
        (1, Some(14))
    );
    assert_eq!(series.len(), 4);
}

#[test]
fn threads_count_into_the_same_series() {
    let metrics = Metrics::new();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..1000 {
                    metrics.record(&inbound("rule buy", 200, 300));
                }
            });
        }
    });
    let series = metrics.series();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].success, 4000);
}

#[test]
fn past_the_cap_new_series_are_counted_as_overflow() {
    // Half the cap per direction: three inbound series.
    let options = MetricsOptions {
        max_series: 6,
        ..MetricsOptions::default()
    };
    let metrics = Metrics::with_options(store(), &options);
    for i in 0..10 {
        let route: StringValue = format!("route {i}").into();
        let mut o = inbound("", 200, 300);
        o.labels.route = route;
        metrics.record(&o);
    }
    metrics.record(&inbound("route 0", 200, 300));
    let series = metrics.series();
    assert_eq!(series.len(), 4, "{series:#?}");
    let overflow: Vec<_> = series.iter().filter(|s| s.overflow).collect();
    assert_eq!(overflow.len(), 1);
    assert_eq!(overflow[0].success, 7);
    assert_eq!(series.iter().map(|s| s.success).sum::<u64>(), 11);
    let text = metrics.prometheus();
    let counted = line(&text, "smi_requests_total{", "route=\"overflow\"");
    assert!(counted.contains("status=\"overflow\""), "{counted}");
    assert!(counted.ends_with(" 7"), "{counted}");
}

#[test]
fn a_report_takes_each_delta_once() {
    let metrics = Metrics::with_options(store(), &MetricsOptions::default());
    metrics.record(&inbound("rule buy", 200, 300));
    metrics.record(&inbound("rule buy", 503, 1000));
    metrics.record(&denied());
    metrics.drain();
    let mut edges = metrics.take_edges(100);
    edges.sort_by(|a, b| a.key.route.cmp(&b.key.route));
    assert_eq!(edges.len(), 2, "{edges:#?}");
    let (refused, buy) = (&edges[0], &edges[1]);
    assert_eq!((buy.success, buy.failure, buy.denied), (1, 1, 0));
    assert_eq!(buy.latency.count(), 2);
    assert_eq!(
        (refused.denied, refused.latency.count()),
        (1, 0),
        "refusals are not in the sketch"
    );
    assert_eq!(
        buy.key.peer.as_deref().unwrap().pod(),
        "bookbuyer-7c4d9f8b5-kq2zt"
    );

    // Taken: nothing more until something new is recorded, then only that.
    metrics.drain();
    assert!(metrics.take_edges(100).is_empty());
    metrics.record(&inbound("rule buy", 200, 300));
    metrics.drain();
    metrics.drain();
    let next = metrics.take_edges(100);
    assert_eq!(next.len(), 1);
    assert_eq!((next[0].success, next[0].latency.count()), (1, 1));
    // The cumulative counters are untouched by reports.
    let text = metrics.prometheus();
    assert!(line(&text, "smi_requests_total{", "status=\"200\"").ends_with(" 2"));
}

#[test]
fn edges_past_the_report_bound_wait_and_the_oldest_go_first() {
    let metrics = Metrics::new();
    let routes = ["a", "b", "c", "d", "e"];
    for route in routes {
        metrics.record(&inbound(route, 200, 300));
    }
    metrics.drain();
    let first = metrics.take_edges(2);
    assert_eq!(first.len(), 2);
    metrics.record(&inbound("f", 200, 300));
    metrics.drain();
    let mut taken: Vec<_> = first.iter().map(|e| e.key.route.to_string()).collect();
    let second = metrics.take_edges(2);
    taken.extend(second.iter().map(|e| e.key.route.to_string()));
    assert!(!taken.contains(&"f".to_owned()), "newer waits: {taken:?}");
    let third: Vec<_> = metrics
        .take_edges(2)
        .iter()
        .map(|e| e.key.route.to_string())
        .collect();
    assert_eq!(third.len(), 2);
    assert_eq!(third[1], "f", "the oldest first: {third:?}");
    taken.push(third[0].clone());
    taken.sort();
    assert_eq!(taken, ["a", "b", "c", "d", "e"].map(str::to_owned));
    assert!(metrics.take_edges(2).is_empty());
}

#[test]
fn inbound_requests_render_in_istios_schema_with_exactly_its_labels() {
    let metrics = Metrics::with_options(store(), &MetricsOptions::default());
    metrics.record(&inbound("rule buy", 200, 1_500));
    metrics.record(&inbound("rule sell", 200, 30_000));
    metrics.record(&inbound("rule buy", 503, 1_500));
    let text = metrics.prometheus();
    let ok = line(&text, "istio_requests_total{", "response_code=\"200\"");
    let want: BTreeSet<String> = [
        "reporter",
        "destination_workload",
        "destination_workload_namespace",
        "response_code",
        "source_workload",
        "source_workload_namespace",
        "source_principal",
        "destination_principal",
        "destination_service_name",
        "request_protocol",
        "grpc_response_status",
        "connection_security_policy",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(label_names(ok), want, "{ok}");
    for label in [
        "reporter=\"destination\"",
        "destination_workload=\"bookstore-v1\"",
        "destination_workload_namespace=\"bookstore\"",
        "source_workload=\"bookbuyer\"",
        "source_workload_namespace=\"bookbuyer\"",
        "source_principal=\"spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer\"",
        "destination_principal=\"spiffe://cluster.local/ns/bookstore/sa/bookstore\"",
        "destination_service_name=\"bookstore\"",
        "request_protocol=\"http\"",
        "grpc_response_status=\"\"",
        "connection_security_policy=\"mutual_tls\"",
    ] {
        assert!(ok.contains(label), "{label} in {ok}");
    }
    // Routes are not Istio labels: both rules are one series.
    assert!(ok.ends_with(" 2"), "{ok}");
    assert!(line(&text, "istio_requests_total{", "response_code=\"503\"").ends_with(" 1"));
    // 1.5 ms and 30 ms in milliseconds buckets; the sum in milliseconds.
    let bucket = |le: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("istio_request_duration_milliseconds_bucket{")
                    && l.contains("response_code=\"200\"")
                    && l.contains(&format!("le=\"{le}\""))
            })
            .unwrap_or_else(|| panic!("no le={le}:\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(bucket("1"), "0");
    assert_eq!(bucket("2"), "1");
    assert_eq!(bucket("25"), "1");
    assert_eq!(bucket("50"), "2");
    assert_eq!(bucket("+Inf"), "2");
    assert!(text.contains("# TYPE istio_request_duration_milliseconds histogram"));
    let sum = line(&text, "istio_request_duration_milliseconds_sum{", "\"200\"");
    assert!(sum.ends_with(" 31.5"), "{sum}");
    assert!(
        !text.contains("osm_request_total"),
        "OSM's schema is off by default"
    );
}

#[test]
fn our_own_families_keep_their_names_and_labels() {
    let metrics = Metrics::with_options(store(), &MetricsOptions::default());
    metrics.record(&inbound("bookstore/t rule 0 match buy", 200, 300));
    metrics.record(&inbound("bookstore/t rule 0 match buy", 200, 300));
    metrics.record(&denied());
    metrics.record(&Observation {
        direction: Direction::Outbound,
        labels: EdgeLabels {
            service: "bookwarehouse/bookwarehouse".into(),
            route: "sent".into(),
            ..EdgeLabels::default()
        },
        status: 200,
        grpc_status: None,
        duration: Duration::from_micros(300),
    });
    let text = metrics.prometheus();
    assert!(text.contains("# TYPE smi_requests_total counter"), "{text}");
    assert!(
        text.contains("smi_requests_total{destination=\"spiffe://cluster.local/ns/bookstore/sa/bookstore\",direction=\"inbound\",route=\"bookstore/t rule 0 match buy\",source=\"spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer\",status=\"200\"} 2"),
        "{text}"
    );
    assert!(text.contains("route=\"denied\",source=\"spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer\",status=\"403\"} 1"), "{text}");
    assert!(text.contains("smi_requests_total{destination=\"bookwarehouse/bookwarehouse\",direction=\"outbound\",route=\"sent\",source=\"spiffe://cluster.local/ns/bookstore/sa/bookstore\",status=\"200\"} 1"), "{text}");
    // 300 us falls in the 0.0005 bucket; cumulative counts include it from there on.
    assert!(text.contains("le=\"0.00025\"} 0"), "{text}");
    assert!(text.contains("le=\"0.0005\"} 2"), "{text}");
    assert!(text.contains("le=\"+Inf\"} 2"), "{text}");
    assert!(
        text.contains("smi_request_duration_seconds_count{"),
        "{text}"
    );
    // Outbound requests are not in Istio's schema (it is the destination's).
    assert_eq!(text.matches("istio_requests_total{").count(), 2, "{text}");
}

#[test]
fn label_values_are_escaped() {
    let metrics = Metrics::new();
    let mut o = inbound("", 200, 300);
    o.labels.route = String::from("a \"quoted\" \\ rule\nnext").into();
    metrics.record(&o);
    let text = metrics.prometheus();
    assert!(
        text.contains(r#"route="a \"quoted\" \\ rule\nnext""#),
        "{text}"
    );
}

#[test]
fn osm_families_render_when_asked_for() {
    let options = MetricsOptions {
        osm: true,
        ..MetricsOptions::default()
    };
    let metrics = Metrics::with_options(store(), &options);
    metrics.record(&inbound("rule buy", 200, 3_000));
    let text = metrics.prometheus();
    let total = line(&text, "osm_request_total{", "");
    assert_eq!(
        total,
        "osm_request_total{response_code=\"200\",source_namespace=\"bookbuyer\",source_kind=\"Deployment\",source_name=\"bookbuyer\",source_pod=\"bookbuyer-7c4d9f8b5-kq2zt\",destination_namespace=\"bookstore\",destination_kind=\"Deployment\",destination_name=\"bookstore-v1\",destination_pod=\"bookstore-v1-5d8f7c9b4-x2x7q\"} 1"
    );
    assert!(text.contains("osm_request_duration_ms_bucket{source_namespace=\"bookbuyer\","));
    assert!(text.contains(",le=\"5\"} 1"), "{text}");
}

#[test]
fn configured_millisecond_bounds_are_used() {
    let options = MetricsOptions {
        duration_buckets_ms: vec![10.0, 1.0],
        ..MetricsOptions::default()
    };
    let metrics = Metrics::with_options(store(), &options);
    metrics.record(&inbound("rule buy", 200, 3_000));
    let text = metrics.prometheus();
    let les: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("istio_request_duration_milliseconds_bucket{"))
        .map(|l| l.split("le=\"").nth(1).unwrap().split('"').next().unwrap())
        .collect();
    assert_eq!(les, ["1", "10", "+Inf"]);
}

#[test]
fn a_dropped_registry_does_not_leak_into_a_new_one() {
    for round in 0..3 {
        let metrics = Metrics::new();
        metrics.record(&inbound("rule buy", 200, 300));
        let series = metrics.series();
        assert_eq!((series.len(), series[0].success), (1, 1), "round {round}");
    }
}

#[test]
fn inbound_services_are_only_ours() {
    let metrics = Metrics::with_options(store(), &MetricsOptions::default());
    assert_eq!(
        metrics
            .inbound_service(Some("bookstore.bookstore:80"))
            .as_str(),
        "bookstore/bookstore"
    );
    assert_eq!(
        metrics.inbound_service(Some("evil.example")).as_str(),
        "unknown"
    );
}

#[test]
fn names_equal_in_content_are_one_series_whatever_their_origin() {
    let metrics = Metrics::new();
    for _ in 0..3 {
        // A new allocation each time, as after each policy update.
        let mut o = inbound("", 200, 300);
        o.labels.route = Arc::<str>::from("rule buy").into();
        metrics.record(&o);
    }
    metrics.record(&inbound("rule buy", 200, 300));
    metrics.record(&inbound("rule sell", 200, 300));
    let mut series = metrics.series();
    series.sort_by(|a, b| a.route.cmp(&b.route));
    assert_eq!(series.len(), 2, "{series:#?}");
    assert_eq!(
        (series[0].route.as_str(), series[0].success),
        ("rule buy", 4)
    );
    assert_eq!(
        (series[1].route.as_str(), series[1].success),
        ("rule sell", 1)
    );
}

#[test]
fn outbound_series_cannot_push_inbound_ones_into_overflow() {
    let options = MetricsOptions {
        max_series: 4,
        ..MetricsOptions::default()
    };
    let metrics = Metrics::with_options(store(), &options);
    // A hostile upstream answers with ever new status codes: outbound series fill their half.
    for status in 200..260 {
        let mut o = inbound("sent", status, 300);
        o.direction = Direction::Outbound;
        metrics.record(&o);
    }
    metrics.record(&inbound("rule buy", 503, 300));
    let series = metrics.series();
    let inbound: Vec<_> = series
        .iter()
        .filter(|s| s.direction == Direction::Inbound)
        .collect();
    assert_eq!(inbound.len(), 1, "{series:#?}");
    assert!(!inbound[0].overflow, "{series:#?}");
}
