//! [`Record`]: the metrics layer of both sides. It wraps a service that answers with
//! [`Labelled`] responses and errors, records each request's edge when its response head (or
//! error) is ready, and hands on the unlabelled value.
//!
//! A gRPC call's status is read from the response head's `grpc-status`, where a trailers-only
//! response (every error tonic returns before a body, and the mesh's own refusals) carries it.
//! A status in trailers after a body is not read: such a call counts by its HTTP status.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use tower_layer::Layer;
use tower_service::Service;

use super::Metrics;
use super::schema::{Direction, Labelled, Observation, Protocol};

/// The status a response head carries, for the `status` label.
pub trait ResponseStatus {
    fn status_code(&self) -> u16;

    /// The head's `grpc-status`, when it has one (a trailers-only gRPC response).
    fn grpc_status(&self) -> Option<u32> {
        None
    }
}

impl<B> ResponseStatus for http::Response<B> {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }

    fn grpc_status(&self) -> Option<u32> {
        self.headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    }
}

/// Records requests in `metrics` as `direction`.
#[derive(Clone, Debug)]
pub struct RecordLayer {
    metrics: Metrics,
    direction: Direction,
}

impl RecordLayer {
    pub fn new(metrics: Metrics, direction: Direction) -> Self {
        Self { metrics, direction }
    }
}

impl<S> Layer<S> for RecordLayer {
    type Service = Record<S>;

    fn layer(&self, inner: S) -> Record<S> {
        Record {
            inner,
            metrics: self.metrics.clone(),
            direction: self.direction,
        }
    }
}

/// The service [`RecordLayer`] makes.
#[derive(Clone, Debug)]
pub struct Record<S> {
    inner: S,
    metrics: Metrics,
    direction: Direction,
}

impl<S> Record<S> {
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S, Req, R, E> Service<Req> for Record<S>
where
    S: Service<Req, Response = Labelled<R>, Error = Labelled<E>>,
    R: ResponseStatus,
{
    type Response = R;
    type Error = E;
    type Future = RecordFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.inner.poll_ready(cx).map_err(|e| e.value)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        RecordFuture {
            inner: self.inner.call(request),
            metrics: Some(self.metrics.clone()),
            direction: self.direction,
            started: Instant::now(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's future; records the edge when it is ready.
    #[derive(Debug)]
    pub struct RecordFuture<F> {
        #[pin]
        inner: F,
        metrics: Option<Metrics>,
        direction: Direction,
        started: Instant,
    }
}

impl<F, R, E> Future for RecordFuture<F>
where
    F: Future<Output = Result<Labelled<R>, Labelled<E>>>,
    R: ResponseStatus,
{
    type Output = Result<R, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<R, E>> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let (status, grpc_status, labels, result) = match result {
            Ok(Labelled { value, labels }) => {
                let grpc = match labels.protocol {
                    Protocol::Grpc => value.grpc_status(),
                    Protocol::Http => None,
                };
                (value.status_code(), grpc, labels, Ok(value))
            }
            Err(Labelled { value, labels }) => (0, None, labels, Err(value)),
        };
        if let Some(metrics) = this.metrics.take() {
            metrics.record(&Observation {
                direction: *this.direction,
                labels,
                status,
                grpc_status,
                duration: this.started.elapsed(),
            });
        }
        Poll::Ready(result)
    }
}
