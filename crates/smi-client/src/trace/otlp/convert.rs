//! [`FinishedSpan`]s as OTLP messages. Attribute names: OpenTelemetry's semantic conventions
//! where one exists (`http.request.method`, `http.response.status_code`,
//! `rpc.grpc.status_code`), `smi.*` for the mesh's own (the edge the metrics label).

use std::time::{Duration, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, SpanFlags, Status};
use smi_core::telemetry::{Direction, Outcome};

use crate::trace::span::FinishedSpan;

pub(super) fn resource(service_name: &str) -> Resource {
    Resource {
        attributes: vec![text("service.name", service_name)],
        ..Resource::default()
    }
}

/// One request carrying `spans`, all of this process (one resource, one scope).
pub(super) fn request(
    resource: Resource,
    spans: impl Iterator<Item = FinishedSpan>,
) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "smi-mesh".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..InstrumentationScope::default()
                }),
                spans: spans.map(span).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

pub(super) fn span(s: FinishedSpan) -> Span {
    let start = unix_nanos(s.start.duration_since(UNIX_EPOCH).unwrap_or_default());
    let end = start.saturating_add(unix_nanos(s.duration));
    let mut flags = u32::from(s.flags.bits());
    if s.parent_id.is_some() {
        flags |= SpanFlags::ContextHasIsRemoteMask as u32;
        if s.remote_parent {
            flags |= SpanFlags::ContextIsRemoteMask as u32;
        }
    }
    let kind = match s.direction {
        Direction::Inbound => SpanKind::Server,
        Direction::Outbound => SpanKind::Client,
    };
    let outcome = s.outcome();
    let status = match outcome {
        Outcome::Failure => Status {
            code: StatusCode::Error as i32,
            message: match (s.http_status, s.grpc_status) {
                (0, _) => "no response".to_owned(),
                (_, Some(code)) if s.http_status < 500 => format!("gRPC status {code}"),
                (http, _) => format!("HTTP {http}"),
            },
        },
        Outcome::Success | Outcome::Denied => Status::default(),
    };
    Span {
        trace_id: s.trace_id.to_bytes().to_vec(),
        span_id: s.span_id.to_bytes().to_vec(),
        trace_state: s
            .tracestate
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        parent_span_id: s
            .parent_id
            .map(|p| p.to_bytes().to_vec())
            .unwrap_or_default(),
        flags,
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes: attributes(&s, outcome),
        status: Some(status),
        name: s.name,
        ..Span::default()
    }
}

fn attributes(s: &FinishedSpan, outcome: Outcome) -> Vec<KeyValue> {
    let labels = &s.labels;
    let mut out = vec![
        text("smi.direction", s.direction.as_str()),
        text("smi.identity", &s.local_identity),
    ];
    if let Some(peer) = &labels.peer {
        out.push(text("smi.peer.identity", peer.identity()));
        for (key, value) in [
            ("smi.peer.namespace", peer.namespace()),
            ("smi.peer.workload", peer.workload()),
            ("smi.peer.pod", peer.pod()),
        ] {
            if !value.is_empty() {
                out.push(text(key, value));
            }
        }
    }
    out.push(text("smi.service", &labels.service));
    if !labels.backend.is_empty() {
        out.push(text("smi.backend", &labels.backend));
    }
    out.push(text("smi.route", &labels.route));
    out.push(text("smi.protocol", labels.protocol.as_str()));
    out.push(text(
        "smi.outcome",
        match outcome {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        },
    ));
    if s.http_status != 0 {
        out.push(int("http.response.status_code", i64::from(s.http_status)));
    }
    if let Some(code) = s.grpc_status {
        out.push(int("rpc.grpc.status_code", i64::from(code)));
    }
    out
}

fn unix_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn text(key: &str, value: &str) -> KeyValue {
    value_of(key, any_value::Value::StringValue(value.to_owned()))
}

fn int(key: &str, value: i64) -> KeyValue {
    value_of(key, any_value::Value::IntValue(value))
}

fn value_of(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use http::HeaderValue;
    use smi_core::telemetry::trace_context::{SpanId, TraceFlags, TraceId};

    use super::*;
    use crate::metrics::{EdgeLabels, PeerNames, Protocol};

    fn finished() -> FinishedSpan {
        FinishedSpan {
            direction: Direction::Inbound,
            trace_id: TraceId::from_bytes([1; 16]),
            span_id: SpanId::from_bytes([2; 8]),
            parent_id: Some(SpanId::from_bytes([3; 8])),
            remote_parent: true,
            flags: TraceFlags::SAMPLED,
            tracestate: Some(HeaderValue::from_static("rojo=1")),
            name: "books.Store/Buy".to_owned(),
            local_identity: "spiffe://cluster.local/ns/bookstore/sa/bookstore".into(),
            start: UNIX_EPOCH + Duration::from_secs(1),
            duration: Duration::from_millis(3),
            labels: EdgeLabels {
                peer: Some(Arc::new(PeerNames::from_parts(
                    "spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer",
                    "bookbuyer",
                    "bookbuyer",
                    "bookbuyer-5d8f9c7b6-x2x9z",
                ))),
                service: "bookstore/bookstore".into(),
                backend: "".into(),
                route: "bookstore/t rule 0".into(),
                protocol: Protocol::Grpc,
                denied: false,
            },
            http_status: 200,
            grpc_status: Some(14),
        }
    }

    fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a any_value::Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    #[test]
    fn a_server_span_carries_its_ids_times_and_edge() {
        let span = span(finished());
        assert_eq!(span.trace_id, vec![1; 16]);
        assert_eq!(span.span_id, vec![2; 8]);
        assert_eq!(span.parent_span_id, vec![3; 8]);
        assert_eq!(span.kind, SpanKind::Server as i32);
        assert_eq!(span.flags, 0x301, "sampled, remote parent");
        assert_eq!(span.trace_state, "rojo=1");
        assert_eq!(span.start_time_unix_nano, 1_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_003_000_000);
        let peer = "spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer";
        for (key, value) in [
            ("smi.direction", "inbound"),
            ("smi.peer.identity", peer),
            ("smi.peer.workload", "bookbuyer"),
            ("smi.service", "bookstore/bookstore"),
            ("smi.route", "bookstore/t rule 0"),
            ("smi.outcome", "failure"),
        ] {
            assert_eq!(
                attribute(&span, key),
                Some(&any_value::Value::StringValue(value.to_owned())),
                "{key}"
            );
        }
        assert_eq!(attribute(&span, "smi.backend"), None, "not split");
        assert_eq!(
            attribute(&span, "rpc.grpc.status_code"),
            Some(&any_value::Value::IntValue(14))
        );
        let status = span.status.unwrap_or_default();
        assert_eq!(
            (status.code, status.message.as_str()),
            (StatusCode::Error as i32, "gRPC status 14")
        );
    }

    #[test]
    fn a_first_span_has_no_parent_and_a_denial_is_not_an_error() {
        let mut s = finished();
        s.parent_id = None;
        s.direction = Direction::Outbound;
        s.labels.denied = true;
        s.http_status = 403;
        s.grpc_status = None;
        s.start = SystemTime::now();
        let span = span(s);
        assert!(span.parent_span_id.is_empty());
        assert_eq!(span.flags, 0x01);
        assert_eq!(span.kind, SpanKind::Client as i32);
        assert_eq!(
            span.status.clone().unwrap_or_default().code,
            StatusCode::Unset as i32
        );
        assert_eq!(
            attribute(&span, "smi.outcome"),
            Some(&any_value::Value::StringValue("denied".to_owned()))
        );
    }
}
