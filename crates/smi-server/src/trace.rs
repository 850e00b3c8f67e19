//! The inbound side of tracing (see `smi_client::trace`): a request's `traceparent` (a
//! malformed one starts a new trace, it never fails the request) becomes the parent of a
//! server span with a new id, and the service inside runs, its `call` and its future, with that
//! span's context in `smi_client::trace::CURRENT`: calls it makes through a `MeshClient`
//! continue the trace. The request the application receives carries the server span as its
//! `traceparent`, for instrumentation of its own.
//!
//! It sits inside the metrics layer, around the authorization decision, so that a span is
//! labelled with the same edge as the metrics (denials included). Without a span sink and
//! without a `traceparent`, a request costs one header lookup and no allocation; without a
//! sink, a `traceparent` that came in is passed on unchanged.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use smi_client::Handles;
use smi_client::metrics::Labelled;
use smi_client::trace::{ActiveSpan, CURRENT, SpanFuture, TraceContext, TraceHandle};
use smi_core::telemetry::Direction;
use tokio::task::futures::TaskLocalFuture;
use tower_layer::Layer;
use tower_service::Service;

/// Makes [`ServerTrace`]s on a mesh's handles.
#[derive(Clone, Debug)]
pub(crate) struct ServerTraceLayer {
    trace: TraceHandle,
    /// Our SPIFFE ID (each span names it).
    local: Arc<str>,
}

impl ServerTraceLayer {
    pub(crate) fn new(handles: &Handles) -> Self {
        Self {
            trace: handles.trace.clone(),
            local: handles.policy.identity_text().clone(),
        }
    }
}

impl<S> Layer<S> for ServerTraceLayer {
    type Service = ServerTrace<S>;

    fn layer(&self, inner: S) -> ServerTrace<S> {
        ServerTrace {
            inner,
            trace: self.trace.clone(),
            local: self.local.clone(),
        }
    }
}

/// Continues the caller's trace around a labelled (mesh) service.
#[derive(Clone, Debug)]
pub(crate) struct ServerTrace<S> {
    inner: S,
    trace: TraceHandle,
    local: Arc<str>,
}

/// The future of [`ServerTrace`]: the inner future, in the request's context when it has one,
/// ending its span.
pub type TraceFuture<F> = SpanFuture<Scoped<F>>;

impl<S, B, R, E> Service<Request<B>> for ServerTrace<S>
where
    S: Service<Request<B>, Response = Labelled<Response<R>>, Error = Labelled<E>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TraceFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let incoming = TraceContext::from_headers(request.headers());
        // A span of ours for a sampled trace, or for a new one; an unsampled one is passed on.
        let sink = self
            .trace
            .sink()
            .filter(|_| incoming.as_ref().is_none_or(TraceContext::is_sampled));
        let (context, span) = match (sink, incoming) {
            (Some(sink), incoming) => {
                let span = ActiveSpan::start(
                    sink,
                    Direction::Inbound,
                    incoming.as_ref(),
                    true,
                    &request,
                    self.local.clone(),
                );
                span.context().inject(request.headers_mut());
                (Some(span.context().clone()), Some(span))
            }
            (None, incoming) => (incoming, None),
        };
        let inner = match context {
            None => Scoped::Plain {
                inner: self.inner.call(request),
            },
            Some(context) => {
                let inner = CURRENT.sync_scope(context.clone(), || self.inner.call(request));
                Scoped::InScope {
                    inner: CURRENT.scope(context, inner),
                }
            }
        };
        SpanFuture::new(inner, span)
    }
}

pin_project_lite::pin_project! {
    /// A future run with the request's trace context in scope, or as it is when there is none.
    #[project = ScopedProj]
    pub enum Scoped<F> {
        Plain { #[pin] inner: F },
        InScope { #[pin] inner: TaskLocalFuture<TraceContext, F> },
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        match self.project() {
            ScopedProj::Plain { inner } => inner.poll(cx),
            ScopedProj::InScope { inner } => inner.poll(cx),
        }
    }
}
