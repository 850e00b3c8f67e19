//! What crosses each hop: the trace, the parent span, the sampled flag and `tracestate`; what
//! a malformed `traceparent`, no sink, and an unsampled trace do.

use smi_client::trace::{FinishedSpan, SpanRecorder, TraceHandle};
use smi_core::telemetry::Direction;

use crate::world::{CALLER_SPAN, TRACE, WAIT, World, ids, span};

#[tokio::test]
async fn the_called_server_continues_the_callers_trace_under_the_client_span() {
    let recorder = SpanRecorder::new();
    let world = World::start(TraceHandle::new(recorder.clone()), false).await;
    let seen = world
        .order(&[
            ("traceparent", &format!("00-{TRACE}-{CALLER_SPAN}-01")),
            ("tracestate", "rojo=00f067aa0ba902b7"),
        ])
        .await;
    let spans = recorder.wait_for(3, WAIT).await.expect("three spans");
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let store_server = span(&spans, Direction::Inbound, "ns/bookstore/");
    let store_client = span(&spans, Direction::Outbound, "ns/bookstore/");
    let warehouse_server = span(&spans, Direction::Inbound, "ns/warehouse/");

    // The warehouse received the caller's trace with the bookstore's client span as parent
    // (its server span's parent is what it read off the wire), and the caller's tracestate.
    // Its handler ran in its own server span, which its request names as the parent from
    // then on (for the application's own instrumentation).
    assert_eq!(warehouse_server.parent_id, Some(store_client.span_id));
    let in_warehouse = (TRACE, warehouse_server.span_id.to_string());
    for key in ["warehouse.traceparent", "warehouse.current"] {
        assert_eq!(
            ids(&seen[key]),
            (in_warehouse.0, in_warehouse.1.as_str()),
            "{key}"
        );
    }
    assert!(
        seen["warehouse.traceparent"].ends_with("-01"),
        "sampled: {seen:?}"
    );
    assert_eq!(seen["warehouse.tracestate"], "rojo=00f067aa0ba902b7");
    // The bookstore's handler ran in its server span, and its request says so too.
    let in_store = (TRACE, store_server.span_id.to_string());
    assert_eq!(
        ids(&seen["bookstore.current"]),
        (in_store.0, in_store.1.as_str())
    );
    assert_eq!(
        ids(&seen["bookstore.traceparent"]),
        (in_store.0, in_store.1.as_str())
    );

    // The spans' links: caller -> bookstore server -> bookstore client -> warehouse server.
    for s in [store_server, store_client, warehouse_server] {
        assert_eq!(s.trace_id.to_string(), TRACE);
        assert!(s.flags.is_sampled());
    }
    assert_eq!(
        store_server.parent_id.map(|p| p.to_string()).as_deref(),
        Some(CALLER_SPAN)
    );
    assert!(store_server.remote_parent);
    assert_eq!(store_client.parent_id, Some(store_server.span_id));
    assert!(!store_client.remote_parent);
    assert_eq!(warehouse_server.parent_id, Some(store_client.span_id));
    assert!(warehouse_server.remote_parent);

    // The mesh's attributes: the edge each side recorded.
    let frontend = "spiffe://cluster.local/ns/frontend/sa/frontend";
    let bookstore = "spiffe://cluster.local/ns/bookstore/sa/bookstore";
    let warehouse = "spiffe://cluster.local/ns/warehouse/sa/warehouse";
    let peer = |s: &FinishedSpan| s.labels.peer.as_ref().map(|p| p.identity().to_owned());
    assert_eq!(peer(store_server).as_deref(), Some(frontend));
    assert_eq!(peer(store_client).as_deref(), Some(warehouse));
    assert_eq!(peer(warehouse_server).as_deref(), Some(bookstore));
    assert_eq!(&*store_client.labels.service, "warehouse/warehouse");
    assert_eq!(&*store_client.labels.backend, "");
    assert_eq!(&*store_client.labels.route, "sent");
    assert!(
        store_server.labels.route.contains("frontend-orders"),
        "{:?}",
        store_server.labels.route
    );
    for s in [store_server, store_client, warehouse_server] {
        assert_eq!((s.http_status, s.grpc_status), (200, None));
        assert_eq!(s.name, "GET");
        assert_eq!(s.tracestate.as_ref().unwrap(), "rojo=00f067aa0ba902b7");
    }
}

#[tokio::test]
async fn a_malformed_traceparent_starts_a_new_trace_and_the_request_still_succeeds() {
    let recorder = SpanRecorder::new();
    let world = World::start(TraceHandle::new(recorder.clone()), false).await;
    let seen = world
        .order(&[
            (
                "traceparent",
                &format!("00-{}-{CALLER_SPAN}-01", TRACE.to_uppercase()),
            ),
            ("tracestate", "rojo=00f067aa0ba902b7"),
        ])
        .await;
    let spans = recorder.wait_for(3, WAIT).await.expect("three spans");
    let store_server = span(&spans, Direction::Inbound, "ns/bookstore/");
    let store_client = span(&spans, Direction::Outbound, "ns/bookstore/");
    let warehouse_server = span(&spans, Direction::Inbound, "ns/warehouse/");
    assert_eq!(store_server.parent_id, None, "a new trace");
    assert_ne!(store_server.trace_id.to_string(), TRACE.to_lowercase());
    assert_eq!(
        store_server.tracestate, None,
        "a restarted trace drops the old tracestate"
    );
    assert_eq!(
        ids(&seen["warehouse.traceparent"]).0,
        store_server.trace_id.to_string()
    );
    assert_eq!(store_client.parent_id, Some(store_server.span_id));
    assert_eq!(warehouse_server.trace_id, store_server.trace_id);
    assert_eq!(warehouse_server.parent_id, Some(store_client.span_id));
    assert_eq!(seen["warehouse.tracestate"], "none");
}

#[tokio::test]
async fn without_a_sink_a_traceparent_passes_unchanged_and_none_is_added() {
    let world = World::start(TraceHandle::disabled(), false).await;
    let traceparent = format!("00-{TRACE}-{CALLER_SPAN}-01");
    let seen = world
        .order(&[("traceparent", &traceparent), ("tracestate", "rojo=1")])
        .await;
    assert_eq!(seen["bookstore.current"], traceparent);
    assert_eq!(seen["warehouse.traceparent"], traceparent);
    assert_eq!(seen["warehouse.tracestate"], "rojo=1");
    let seen = world.order(&[]).await;
    for key in [
        "bookstore.current",
        "bookstore.traceparent",
        "warehouse.traceparent",
        "warehouse.tracestate",
        "warehouse.current",
    ] {
        assert_eq!(seen[key], "none", "{key}: {seen:?}");
    }
}

#[tokio::test]
async fn an_unsampled_trace_is_passed_on_and_not_recorded() {
    let recorder = SpanRecorder::new();
    let world = World::start(TraceHandle::new(recorder.clone()), false).await;
    let traceparent = format!("00-{TRACE}-{CALLER_SPAN}-00");
    let seen = world.order(&[("traceparent", &traceparent)]).await;
    assert_eq!(seen["warehouse.traceparent"], traceparent);
    // A sampled request afterwards: its three spans are the only ones.
    world
        .order(&[("traceparent", &format!("00-{TRACE}-{CALLER_SPAN}-01"))])
        .await;
    let spans = recorder.wait_for(3, WAIT).await.expect("three spans");
    assert_eq!(spans.len(), 3, "{spans:#?}");
    assert!(spans.iter().all(|s| s.flags.is_sampled()));
}
