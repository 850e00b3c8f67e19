//! What a served connection's requests are doing: [`WithPeer`] puts the connection's [`Peer`] in
//! each request and counts the requests in flight in the connection's [`Activity`], from the
//! call until the response body is finished or dropped; [`Activity::idle`] waits for a quiet
//! period. Per request: two atomic operations on the connection's own counter, no lock and no
//! allocation (the guard rides in the response future, then in the body).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Method, Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::Notify;
use tower_service::Service;

use crate::peer::Peer;

/// The requests of one connection.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    in_flight: AtomicUsize,
    /// Whether a request has arrived (until then the header read timeout bounds the wait).
    started: AtomicBool,
    /// Notified when the last request in flight ends.
    quiet: Notify,
}

/// Inserts the connection's [`Peer`] into each request and tracks it in the [`Activity`].
/// Without `upgrades`, hyper's `OnUpgrade` is taken out of the request, so the application
/// cannot take over the connection.
#[derive(Clone, Debug)]
pub(crate) struct WithPeer<S> {
    pub(crate) inner: S,
    pub(crate) peer: Peer,
    pub(crate) activity: Arc<Activity>,
    pub(crate) upgrades: bool,
}

pin_project! {
    /// The response future of [`WithPeer`]: moves the in-flight guard into the body.
    #[derive(Debug)]
    pub(crate) struct ResponseFuture<F> {
        #[pin]
        inner: F,
        guard: Option<InFlight>,
        connect: bool,
    }
}

pin_project! {
    /// A response body that counts as in flight until it ends or is dropped.
    #[derive(Debug)]
    pub(crate) struct TrackBody<B> {
        #[pin]
        inner: B,
        guard: Option<InFlight>,
    }
}

/// One request in flight.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

// === impl Activity ===

impl Activity {
    fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        if !self.started.load(Ordering::Relaxed) {
            self.started.store(true, Ordering::Relaxed);
        }
        InFlight(self.clone())
    }

    /// Keeps the connection busy for good: it carries a stream the application took over
    /// (HTTP/2 CONNECT), which this counter cannot see end.
    fn pin_busy(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// Resolves once no request has been in flight for `idle` (before the first request: for
    /// `first`, or `idle` when `first` is `None`); never, when the period is `None`.
    pub(crate) async fn idle(&self, first: Option<Duration>, idle: Option<Duration>) {
        loop {
            if self.in_flight.load(Ordering::Acquire) > 0 {
                self.quiet.notified().await;
                continue;
            }
            let period = if self.started.load(Ordering::Relaxed) {
                idle
            } else {
                first.or(idle)
            };
            let Some(period) = period else {
                return std::future::pending().await;
            };
            tokio::select! {
                biased;
                // A request ended during the wait: the quiet period starts again from now.
                () = self.quiet.notified() => {}
                () = tokio::time::sleep(period) => {
                    if self.in_flight.load(Ordering::Acquire) == 0 {
                        return;
                    }
                }
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.quiet.notify_one();
        }
    }
}

// === impl WithPeer ===

impl<S, B, R> Service<Request<B>> for WithPeer<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<TrackBody<R>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let extensions = request.extensions_mut();
        extensions.insert(self.peer.clone());
        if !self.upgrades {
            extensions.remove::<hyper::upgrade::OnUpgrade>();
        }
        let connect = self.upgrades && request.method() == Method::CONNECT;
        let guard = Some(self.activity.start());
        ResponseFuture {
            inner: self.inner.call(request),
            guard,
            connect,
        }
    }
}

// === impl ResponseFuture ===

impl<F, R, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = Result<Response<TrackBody<R>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let guard = this.guard.take();
        if *this.connect && response.status().is_success() {
            // An HTTP/2 CONNECT tunnel (HTTP/1 ones leave the connection instead).
            if let Some(guard) = &guard {
                guard.0.pin_busy();
            }
        }
        Poll::Ready(Ok(response.map(|inner| TrackBody { inner, guard })))
    }
}

// === impl TrackBody ===

impl<B: Body> Body for TrackBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if frame.is_none() {
            // The body is done even if hyper keeps it around a little longer.
            this.guard.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;
