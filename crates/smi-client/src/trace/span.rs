//! One span per request on each side: [`ActiveSpan`] while the request is in flight,
//! [`FinishedSpan`] once its response head (or error) is ready, labelled with the same edge the
//! metrics record.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, HeaderValue, Request, Response};
use smi_core::telemetry::trace_context::{SpanId, TraceFlags, TraceId};
use smi_core::telemetry::{Direction, Outcome, classify};

use super::context::{TraceContext, new_span_id};
use super::sink::SpanSink;
use crate::metrics::{EdgeLabels, Labelled};

/// The longest span name kept (a gRPC method's path; a hostile path is cut, not stored whole).
const MAX_NAME: usize = 128;

/// A span that has ended, as a [`SpanSink`] receives it.
#[derive(Clone, Debug)]
pub struct FinishedSpan {
    /// `Inbound`: a server span; `Outbound`: a client span.
    pub direction: Direction,
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// `None` for the first span of a trace.
    pub parent_id: Option<SpanId>,
    /// The parent is another process's span (the caller's, for a server span).
    pub remote_parent: bool,
    pub flags: TraceFlags,
    pub tracestate: Option<HeaderValue>,
    /// The gRPC method (`package.Service/Method`) or the HTTP method.
    pub name: String,
    /// This workload's SPIFFE ID.
    pub local_identity: Arc<str>,
    pub start: SystemTime,
    /// To the response head (or the error), as the metrics measure it.
    pub duration: Duration,
    /// The edge, as the metrics label it: peer, service, backend, route, protocol, denial.
    pub labels: EdgeLabels,
    /// 0 when there was no response.
    pub http_status: u16,
    /// From the response head (a trailers-only gRPC answer; trailers come after the span).
    pub grpc_status: Option<u32>,
}

impl FinishedSpan {
    /// As the metrics count it.
    pub fn outcome(&self) -> Outcome {
        if self.labels.denied {
            Outcome::Denied
        } else {
            classify(self.http_status, self.grpc_status)
        }
    }
}

/// A span being recorded: made when the request starts, finished with its answer.
pub struct ActiveSpan {
    sink: Arc<dyn SpanSink>,
    direction: Direction,
    /// This span's context: what the work it does propagates.
    context: TraceContext,
    parent_id: Option<SpanId>,
    remote_parent: bool,
    name: String,
    local_identity: Arc<str>,
    start: SystemTime,
    started: Instant,
}

impl std::fmt::Debug for ActiveSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveSpan")
            .field("direction", &self.direction)
            .field("context", &self.context)
            .field("parent_id", &self.parent_id)
            .finish_non_exhaustive()
    }
}

impl ActiveSpan {
    /// Starts a span with a new id, the child of `parent` (another process's span when
    /// `remote_parent`), or the first span of a new trace.
    pub fn start<B>(
        sink: &Arc<dyn SpanSink>,
        direction: Direction,
        parent: Option<&TraceContext>,
        remote_parent: bool,
        request: &Request<B>,
        local_identity: Arc<str>,
    ) -> Self {
        let id = new_span_id();
        let context = match parent {
            Some(parent) => parent.child(id),
            None => TraceContext::new_root(id),
        };
        Self {
            sink: sink.clone(),
            direction,
            context,
            parent_id: parent.map(TraceContext::span_id),
            remote_parent: parent.is_some() && remote_parent,
            name: span_name(request),
            local_identity,
            start: SystemTime::now(),
            started: Instant::now(),
        }
    }

    pub fn context(&self) -> &TraceContext {
        &self.context
    }

    /// Ends the span with the answer of a labelled (mesh) service and hands it to the sink.
    pub fn finish<R, E>(self, answer: &Result<Labelled<Response<R>>, Labelled<E>>) {
        let (labels, http_status, grpc_status) = match answer {
            Ok(Labelled { value, labels }) => (
                labels,
                value.status().as_u16(),
                grpc_status(value.headers()),
            ),
            Err(Labelled { labels, .. }) => (labels, 0, None),
        };
        let duration = self.started.elapsed();
        let traceparent = self.context.traceparent;
        self.sink.finish(FinishedSpan {
            direction: self.direction,
            trace_id: traceparent.trace_id,
            span_id: traceparent.parent_id,
            parent_id: self.parent_id,
            remote_parent: self.remote_parent,
            flags: traceparent.flags,
            tracestate: self.context.tracestate,
            name: self.name,
            local_identity: self.local_identity,
            start: self.start,
            duration,
            labels: labels.clone(),
            http_status,
            grpc_status,
        });
    }
}

pin_project_lite::pin_project! {
    /// A labelled (mesh) service's future whose span, if it has one, ends with its answer.
    #[derive(Debug)]
    pub struct SpanFuture<F> {
        #[pin]
        inner: F,
        span: Option<ActiveSpan>,
    }
}

impl<F> SpanFuture<F> {
    pub fn new(inner: F, span: Option<ActiveSpan>) -> Self {
        Self { inner, span }
    }
}

impl<F, R, E> Future for SpanFuture<F>
where
    F: Future<Output = Result<Labelled<Response<R>>, Labelled<E>>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let answer = ready!(this.inner.poll(cx));
        if let Some(span) = this.span.take() {
            span.finish(&answer);
        }
        Poll::Ready(answer)
    }
}

/// `package.Service/Method` for gRPC (its path), the HTTP method otherwise; at most
/// [`MAX_NAME`] bytes.
fn span_name<B>(request: &Request<B>) -> String {
    let grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if !grpc {
        return request.method().as_str().to_owned();
    }
    let path = request.uri().path().trim_start_matches('/');
    let mut end = path.len().min(MAX_NAME);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    path[..end].to_owned()
}

/// The `grpc-status` a response head carries, if any.
fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}
