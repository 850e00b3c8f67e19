//! The outbound client: a `tower::Service<http::Request<B>>` for hyper and for tonic-generated
//! clients, composed of one service per step:
//!
//! ```text
//! Record (metrics: the edge us -> backend)
//!   -> ClientTrace (crate::trace: traceparent in, client span)
//!   -> Split (split.rs: authority -> service -> TrafficSplit backend; waits, bounded, for
//!            endpoints that have not arrived yet)
//!   -> Dispatch (retry.rs: balance.rs picks an endpoint by power of two choices over requests
//!               in flight; endpoint.rs connects: TCP, TLS, the SPIFFE ID bound to the
//!               endpoint; retries what was never sent)
//! ```
//!
//! If connecting to an endpoint fails, another is tried: the request had not been sent. A
//! request that reached a server is never sent again. An endpoint whose identity is revoked
//! (the control's deny list) is never sent anything, and its connections are dropped.

mod balance;
mod body;
mod endpoint;
mod error;
mod layer;
mod request;
mod retry;
mod split;

pub use body::OutboundBody;
pub use error::OutboundError;
pub use layer::{MeshLayer, MeshOr, MeshOrFuture};

use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use tower_service::Service;

use crate::handles::{Handles, KeepAlive, PolicyHandle};
use crate::metrics::{Direction, Record, RecordFuture, RecordLayer};
use crate::trace::{ClientTrace, SpanFuture};
use retry::Dispatch;
use split::{Split, SplitFuture};

/// How long a request to a service whose endpoints are not known yet waits for them by default
/// (a workload that just started, a server that registered a moment ago) before it fails with
/// `UnknownService` or `NoEndpoints`. Set another with [`MeshClient::endpoint_wait`].
pub const DEFAULT_ENDPOINT_WAIT: Duration = Duration::from_secs(3);

type Stack<B> = Record<ClientTrace<Split<Dispatch<B>>>>;

/// Calls mesh services. Cheap to clone; clones share connections.
pub struct MeshClient<B> {
    stack: Stack<B>,
    _keep_alive: KeepAlive,
}

impl<B> Clone for MeshClient<B> {
    fn clone(&self) -> Self {
        Self {
            stack: self.stack.clone(),
            _keep_alive: self._keep_alive.clone(),
        }
    }
}

impl<B> std::fmt::Debug for MeshClient<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshClient")
            .field("identity", &self.policy().identity().to_string())
            .field("endpoints", &self.connected_endpoints())
            .finish()
    }
}

impl<B: OutboundBody> MeshClient<B> {
    /// A client on a mesh's handles (pass `&mesh` or `mesh`), waiting up to
    /// [`DEFAULT_ENDPOINT_WAIT`] for endpoints not known yet.
    pub fn new(handles: impl Into<Handles>) -> Self {
        let handles = handles.into();
        let split = Split::new(
            handles.policy.clone(),
            DEFAULT_ENDPOINT_WAIT,
            Dispatch::new(handles.tls.clone()),
        );
        let stack = tower_layer::Layer::layer(
            &RecordLayer::new(handles.metrics.clone(), Direction::Outbound),
            ClientTrace::new(
                split,
                handles.trace.clone(),
                handles.policy.identity_text().clone(),
            ),
        );
        Self {
            stack,
            _keep_alive: handles.keep_alive,
        }
    }

    /// How long a request waits for a service's endpoints to arrive before failing (zero: it
    /// fails at once).
    #[must_use]
    pub fn endpoint_wait(mut self, wait: Duration) -> Self {
        self.stack.get_mut().get_mut().set_endpoint_wait(wait);
        self
    }

    /// Sends one request (what `Service::call` does), and records it in the mesh's metrics.
    pub async fn send(&self, request: Request<B>) -> Result<Response<Incoming>, OutboundError> {
        self.clone().call(request).await
    }
}

impl<B> MeshClient<B> {
    /// The policy this client routes by.
    pub fn policy(&self) -> &PolicyHandle {
        self.stack.get_ref().get_ref().policy()
    }

    /// How many endpoints this client (with its clones) keeps connection state for: those it
    /// has called that are still in the policy.
    pub fn connected_endpoints(&self) -> usize {
        self.stack.get_ref().get_ref().inner().pool().len()
    }
}

impl<B: OutboundBody> Service<Request<B>> for MeshClient<B> {
    type Response = Response<Incoming>;
    type Error = OutboundError;
    type Future = ResponseFuture<B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.stack.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Connections to endpoints that left the policy (or were revoked) go first, whether or
        // not this request reaches an endpoint: once per policy version.
        let split = self.stack.get_ref().get_ref();
        split.inner().pool().prune(&split.policy().load());
        ResponseFuture {
            inner: self.stack.call(request),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`MeshClient`]'s `call`.
    pub struct ResponseFuture<B> {
        #[pin]
        inner: RecordFuture<SpanFuture<SplitFuture<retry::DispatchFuture<B>>>>,
    }
}

impl<B: OutboundBody> std::future::Future for ResponseFuture<B> {
    type Output = Result<Response<Incoming>, OutboundError>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

impl<B> std::fmt::Debug for ResponseFuture<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
