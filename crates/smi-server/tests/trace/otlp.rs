//! Export to an OTLP/gRPC collector built from opentelemetry-proto's `TraceServiceServer`
//! (tonic, on loopback): every span with its links and attributes, and a full queue.

use std::net::SocketAddr;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use smi_client::trace::otlp::{OtlpConfig, OtlpExporter};
use smi_client::trace::{FinishedSpan, TraceHandle};
use smi_core::telemetry::Direction;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;

use crate::world::{CALLER_SPAN, TRACE, WAIT, World, ids};

/// An OTLP/gRPC collector: keeps every span it receives, with its resource's service name;
/// a stalled one then never answers.
#[derive(Clone)]
struct Collector {
    spans: std::sync::Arc<watch::Sender<Vec<(String, Span)>>>,
    stalled: bool,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                received.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
            }
        }
        self.spans.send_modify(|all| all.extend(received));
        if self.stalled {
            std::future::pending::<()>().await;
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    async fn start() -> (Self, SocketAddr) {
        Self::serve(false).await
    }

    async fn start_stalled() -> (Self, SocketAddr) {
        Self::serve(true).await
    }

    async fn serve(stalled: bool) -> (Self, SocketAddr) {
        let collector = Collector {
            spans: std::sync::Arc::new(watch::Sender::new(Vec::new())),
            stalled,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(TcpListenerStream::new(listener));
        tokio::spawn(server);
        (collector, addr)
    }

    async fn wait_for(&self, n: usize) -> Vec<(String, Span)> {
        let mut changes = self.spans.subscribe();
        let received = tokio::time::timeout(WAIT, changes.wait_for(|spans| spans.len() >= n))
            .await
            .expect("the spans arrive in time")
            .expect("the collector is running");
        received.clone()
    }
}

fn text<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
}

fn int(span: &Span, key: &str) -> Option<i64> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::IntValue(i) => Some(*i),
            _ => None,
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn an_otlp_collector_receives_every_span_with_its_links_and_attributes() {
    let (collector, addr) = Collector::start().await;
    let config = OtlpConfig::new(format!("http://{addr}"))
        .service_name("bookstore-demo")
        .delay(Duration::from_millis(20));
    let exporter = OtlpExporter::start(config).unwrap();
    let world = World::start(TraceHandle::new(exporter.clone()), true).await;
    let seen = world
        .order(&[("traceparent", &format!("00-{TRACE}-{CALLER_SPAN}-01"))])
        .await;
    let spans = collector.wait_for(3).await;
    assert_eq!(spans.len(), 3, "{spans:#?}");
    assert!(spans.iter().all(|(service, _)| service == "bookstore-demo"));
    let find = |kind: SpanKind, local: &str| {
        spans
            .iter()
            .map(|(_, s)| s)
            .find(|s| {
                s.kind == kind as i32 && text(s, "smi.identity").is_some_and(|i| i.contains(local))
            })
            .unwrap_or_else(|| panic!("no {kind:?} span of {local}: {spans:#?}"))
    };
    let store_server = find(SpanKind::Server, "ns/bookstore/");
    let store_client = find(SpanKind::Client, "ns/bookstore/");
    let warehouse_server = find(SpanKind::Server, "ns/warehouse/");

    for s in [store_server, store_client, warehouse_server] {
        assert_eq!(hex(&s.trace_id), TRACE);
        assert_eq!(s.name, "GET");
        assert!(s.end_time_unix_nano >= s.start_time_unix_nano);
        assert_eq!(int(s, "http.response.status_code"), Some(200));
        assert_eq!(text(s, "smi.outcome"), Some("success"));
        assert_eq!(s.flags & 0xff, 0x01, "sampled");
    }
    assert_eq!(hex(&store_server.parent_span_id), CALLER_SPAN);
    assert_eq!(store_client.parent_span_id, store_server.span_id);
    assert_eq!(warehouse_server.parent_span_id, store_client.span_id);
    assert_eq!(
        ids(&seen["warehouse.traceparent"]).1,
        hex(&warehouse_server.span_id),
        "the warehouse's handler ran in the server span exported"
    );
    assert_eq!(store_server.flags & 0x300, 0x300, "remote parent");
    assert_eq!(store_client.flags & 0x300, 0x100, "local parent");

    let bookstore = "spiffe://cluster.local/ns/bookstore/sa/bookstore";
    let warehouse = "spiffe://cluster.local/ns/warehouse/sa/warehouse";
    for (s, direction, peer) in [
        (
            store_server,
            "inbound",
            "spiffe://cluster.local/ns/frontend/sa/frontend",
        ),
        (store_client, "outbound", warehouse),
        (warehouse_server, "inbound", bookstore),
    ] {
        assert_eq!(text(s, "smi.direction"), Some(direction));
        assert_eq!(text(s, "smi.peer.identity"), Some(peer));
        assert!(text(s, "smi.service").is_some() && text(s, "smi.route").is_some());
    }
    assert_eq!(
        text(store_client, "smi.service"),
        Some("warehouse/warehouse")
    );
    assert_eq!(
        text(store_client, "smi.backend"),
        Some("warehouse/warehouse-v1")
    );
    assert_eq!(text(store_client, "smi.route"), Some("sent"));
    assert_eq!(text(store_server, "smi.backend"), None);
    assert!(text(store_server, "smi.route").is_some_and(|r| r.contains("frontend-orders")));
    assert!(text(warehouse_server, "smi.route").is_some_and(|r| r.contains("bookstore-stock")));

    // The exporter counts them once the collector has answered.
    let mut calls = exporter.export_calls();
    tokio::time::timeout(WAIT, calls.wait_for(|_| exporter.stats().exported >= 3))
        .await
        .expect("the export is answered in time")
        .unwrap();
    let stats = exporter.stats();
    assert_eq!((stats.exported, stats.dropped, stats.failed), (3, 0, 0));
}

#[tokio::test]
async fn a_full_export_queue_drops_and_counts_and_requests_do_not_wait() {
    let (collector, addr) = Collector::start_stalled().await;
    let config = OtlpConfig::new(format!("http://{addr}"))
        .max_queue(1)
        .delay(Duration::from_millis(1));
    let exporter = OtlpExporter::start(config).unwrap();
    // One span goes out in a batch of one, whose export never ends...
    exporter.finish_for_test();
    collector.wait_for(1).await;
    // ...so one more fits in the queue, and the rest are dropped and counted.
    for _ in 0..5 {
        exporter.finish_for_test();
    }
    assert_eq!(exporter.stats().dropped, 4);
    // Requests do not wait for the exporter: their spans are dropped too.
    let world = World::start(TraceHandle::new(exporter.clone()), false).await;
    let seen = world.order(&[]).await;
    assert_ne!(
        seen["warehouse.traceparent"], "none",
        "a new trace is started"
    );
    assert_eq!(exporter.stats().dropped, 7);
    assert_eq!(exporter.stats().exported, 0);
}

trait FinishForTest {
    fn finish_for_test(&self);
}

impl FinishForTest for OtlpExporter {
    /// Hands the exporter one span, as a layer would.
    fn finish_for_test(&self) {
        use smi_client::trace::{SpanId, SpanSink, TraceFlags, TraceId};
        self.finish(FinishedSpan {
            direction: Direction::Inbound,
            trace_id: TraceId::from_bytes([1; 16]),
            span_id: SpanId::from_bytes([2; 8]),
            parent_id: None,
            remote_parent: false,
            flags: TraceFlags::SAMPLED,
            tracestate: None,
            name: "GET".to_owned(),
            local_identity: "spiffe://cluster.local/ns/a/sa/a".into(),
            start: std::time::SystemTime::now(),
            duration: Duration::from_millis(1),
            labels: Default::default(),
            http_status: 200,
            grpc_status: None,
        });
    }
}
