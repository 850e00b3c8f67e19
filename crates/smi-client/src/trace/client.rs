//! The outbound side: each request the client sends continues the trace it is sent in (the
//! request's own `traceparent`, set by the application's instrumentation, or else the one the
//! inbound layers put in [`CURRENT`](super::CURRENT)), with a client span of its own when spans
//! are recorded. Sits between the metrics layer and the split, where answers carry their edge.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use smi_core::telemetry::Direction;
use tower_service::Service;

use super::context::{TraceContext, current};
use super::sink::TraceHandle;
use super::span::{ActiveSpan, SpanFuture};
use crate::metrics::Labelled;

/// Propagates the trace context into each outbound request, and records its client span.
#[derive(Clone, Debug)]
pub(crate) struct ClientTrace<S> {
    inner: S,
    trace: TraceHandle,
    /// Our SPIFFE ID (each span names it).
    local: Arc<str>,
}

impl<S> ClientTrace<S> {
    pub(crate) fn new(inner: S, trace: TraceHandle, local: Arc<str>) -> Self {
        Self {
            inner,
            trace,
            local,
        }
    }

    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }

    pub(crate) fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Writes the request's trace headers, and starts its span when spans are recorded.
    ///
    /// Without a sink and without a context this reads one header and one task-local, and
    /// allocates nothing. Without a sink, a context is passed on unchanged (the spec's
    /// pass-through: no span of ours would exist to be a parent). With a sink, a sampled
    /// context (or none: a new trace) gets a client span; an unsampled one is passed on.
    fn begin<B>(&self, request: &mut Request<B>) -> Option<ActiveSpan> {
        let (parent, from_request) = match TraceContext::from_headers(request.headers()) {
            Some(context) => (Some(context), true),
            None => (current(), false),
        };
        let sink = self
            .trace
            .sink()
            .filter(|_| parent.as_ref().is_none_or(TraceContext::is_sampled));
        match (sink, parent) {
            (Some(sink), parent) => {
                let span = ActiveSpan::start(
                    sink,
                    Direction::Outbound,
                    parent.as_ref(),
                    false,
                    request,
                    self.local.clone(),
                );
                span.context().inject(request.headers_mut());
                Some(span)
            }
            (None, Some(parent)) if !from_request => {
                parent.inject(request.headers_mut());
                None
            }
            (None, _) => None,
        }
    }
}

impl<S, B, R, E> Service<Request<B>> for ClientTrace<S>
where
    S: Service<Request<B>, Response = Labelled<Response<R>>, Error = Labelled<E>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = SpanFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let span = self.begin(&mut request);
        SpanFuture::new(self.inner.call(request), span)
    }
}
