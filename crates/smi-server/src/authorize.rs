//! `AuthorizeLayer`: every request is decided by the mesh's current SMI policy (deny unless a
//! TrafficTarget allows it). A denied HTTP request gets `403` with a short body; a denied gRPC
//! call gets `PERMISSION_DENIED`. The policy is read per request, so a change applies to
//! connections that are already open. Before deciding, the request is made canonical (its path
//! normalized, its authority and matched headers unambiguous; see [`crate::canonical`]): an
//! ambiguous one gets `400`, and the application receives the canonical request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{Either, Full};
use smi_client::metrics::{
    Direction, EdgeLabels, Labelled, Metrics, Protocol, Record, RecordFuture, RecordLayer,
    StringValue,
};
use smi_client::{Handles, KeepAlive, PolicyHandle};
use smi_core::policy::{self, HttpRequest};
use tower_layer::Layer;
use tower_service::Service;

use crate::canonical::{Invalid, authority, canonicalize};
use crate::peer::Peer;
use crate::trace::{ServerTrace, ServerTraceLayer, TraceFuture};

/// Enforces SMI policy in front of a service served with [`crate::serve`], and records each
/// request in the mesh's metrics (inbound edges, through the same metrics layer as outbound).
///
/// Wrap the whole application with it (`tower::Layer::layer(&authorize, router)`), never an
/// axum `Router::layer` or a route: those run after the router chose a route from the raw path,
/// and the request must be routed by the normalized path that was authorized.
#[derive(Clone, Debug)]
pub struct AuthorizeLayer {
    policy: PolicyHandle,
    metrics: Metrics,
    record: RecordLayer,
    trace: ServerTraceLayer,
    keep_alive: KeepAlive,
}

impl AuthorizeLayer {
    /// On a mesh's handles (pass `mesh.clone()`, `&mesh` or handles made for a test).
    pub fn new(handles: impl Into<Handles>) -> Self {
        let handles = handles.into();
        Self {
            trace: ServerTraceLayer::new(&handles),
            record: RecordLayer::new(handles.metrics.clone(), Direction::Inbound),
            metrics: handles.metrics,
            policy: handles.policy,
            keep_alive: handles.keep_alive,
        }
    }
}

impl<S> Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Authorize<S> {
        Authorize(self.record.layer(self.trace.layer(Decide {
            inner,
            policy: self.policy.clone(),
            metrics: self.metrics.clone(),
            _keep_alive: self.keep_alive.clone(),
        })))
    }
}

/// The service [`AuthorizeLayer`] makes: metrics around the trace span (`crate::trace`) around the
/// decision around the application.
#[derive(Clone, Debug)]
pub struct Authorize<S>(Record<ServerTrace<Decide<S>>>);

impl<S, ReqB, ResB> Service<Request<ReqB>> for Authorize<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Answer<ResB>;
    type Error = S::Error;
    type Future = AuthorizeFuture<S::Future, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        AuthorizeFuture {
            inner: self.0.call(request),
        }
    }
}

/// The decision: canonicalize, authorize, then the application or the refusal; every answer
/// labelled with its edge.
#[derive(Clone, Debug)]
pub struct Decide<S> {
    inner: S,
    policy: PolicyHandle,
    /// Which of our services a request names (its edge's `service`).
    metrics: Metrics,
    /// A mesh moved into the layer keeps updating the policy.
    _keep_alive: KeepAlive,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Decide<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Labelled<Answer<ResB>>;
    type Error = Labelled<S::Error>;
    type Future = DecideFuture<S::Future, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(|value| Labelled {
            value,
            labels: EdgeLabels {
                service: "unknown".into(),
                route: "error".into(),
                ..EdgeLabels::default()
            },
        })
    }

    fn call(&mut self, mut request: Request<ReqB>) -> Self::Future {
        let state = self.policy.load();
        // Decide on the canonical request, and pass on that same request: the application must
        // see the path and headers that were authorized, not another spelling of them.
        let decision = canonicalize(&mut request, state.snapshot.matched_headers())
            .map_err(Refusal::Invalid)
            .and_then(|()| {
                self.decide(&state.snapshot, &request)
                    .map_err(Refusal::Denied)
            });
        match decision {
            Ok(route) => {
                let labels = self.labels(&request, route, false);
                DecideFuture::Allowed {
                    inner: self.inner.call(request),
                    labels: Some(labels),
                }
            }
            Err(refusal) => DecideFuture::Denied {
                answer: Some(Labelled {
                    labels: self.labels(&request, refusal.route_label().into(), true),
                    value: refused(&request, refusal),
                }),
            },
        }
    }
}

/// Why a request did not reach the application.
#[derive(Clone, Copy, Debug)]
enum Refusal {
    /// Ambiguous or malformed: 400 (gRPC `INVALID_ARGUMENT`).
    Invalid(Invalid),
    /// Not allowed by policy (the reason's short code): 403 (gRPC `PERMISSION_DENIED`).
    Denied(&'static str),
}

impl Refusal {
    fn route_label(&self) -> &'static str {
        match self {
            Refusal::Invalid(_) => "invalid",
            Refusal::Denied(_) => "denied",
        }
    }
}

impl<S> Decide<S> {
    /// The request's edge: the caller's names (made once per connection), the service of ours
    /// it named, what let it through (or `denied` / `invalid`: a denial).
    fn labels<B>(&self, request: &Request<B>, route: StringValue, denied: bool) -> EdgeLabels {
        EdgeLabels {
            peer: peer_of(request).map(|p| p.names().clone()),
            service: self.metrics.inbound_service(authority(request)),
            backend: StringValue::EMPTY,
            route,
            protocol: Protocol::of(request.headers()),
            denied,
        }
    }

    /// `Ok` carries what allowed it (the metrics' route label), `Err` the reason's short code.
    fn decide<B>(
        &self,
        snapshot: &smi_core::Snapshot,
        request: &Request<B>,
    ) -> Result<StringValue, &'static str> {
        let Some(peer) = peer_of(request) else {
            return Err("unauthenticated");
        };
        let mut http = HttpRequest::new(
            request.method().as_str(),
            request.uri().path(),
            request.headers(),
        );
        http.authority = authority(request);
        let decision = policy::Request::http(Some(peer.local.port()), http);
        match snapshot.authorize(self.policy.identity(), Some(&peer.identity), &decision) {
            Ok(permit) => Ok(permit.label().into()),
            Err(denied) => {
                tracing::debug!(peer = %peer.identity, path = request.uri().path(), reason = %denied, "request denied");
                Err(denied.code())
            }
        }
    }
}

/// The caller: a `Peer` extension (`serve`, tonic with `accept`) or axum's `ConnectInfo<Peer>`
/// (`axum::serve` with `MeshListener`).
fn peer_of<B>(request: &Request<B>) -> Option<&Peer> {
    let extensions = request.extensions();
    extensions.get::<Peer>().or_else(|| {
        extensions
            .get::<axum::extract::ConnectInfo<Peer>>()
            .map(|info| &info.0)
    })
}

fn is_grpc<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

fn refused<B, ResB>(request: &Request<B>, refusal: Refusal) -> Answer<ResB> {
    let (status, grpc_status, message) = match refusal {
        Refusal::Invalid(invalid) => (
            StatusCode::BAD_REQUEST,
            "3",
            format!("refused by the mesh: {invalid}"),
        ),
        Refusal::Denied(code) => (
            StatusCode::FORBIDDEN,
            "7",
            format!("denied by SMI policy: {code}"),
        ),
    };
    let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
    if is_grpc(request) {
        // A trailers-only gRPC response: status in the headers.
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert("grpc-status", HeaderValue::from_static(grpc_status));
        if let Ok(message) = HeaderValue::from_str(&message) {
            headers.insert("grpc-message", message);
        }
    } else {
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        *response.body_mut() = Either::Right(Full::new(Bytes::from(message + "\n")));
    }
    response
}

/// What an authorized service answers: the application's response, or the mesh's refusal.
pub type Answer<ResB> = Response<Either<ResB, Full<Bytes>>>;

pin_project_lite::pin_project! {
    /// The future of [`Authorize`]: the answer, recorded.
    pub struct AuthorizeFuture<F, ResB> {
        #[pin]
        inner: RecordFuture<TraceFuture<DecideFuture<F, ResB>>>,
    }
}

impl<F, ResB, E> Future for AuthorizeFuture<F, ResB>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Answer<ResB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

pin_project_lite::pin_project! {
    /// The application's response, or the refusal, labelled.
    #[project = DecideProj]
    pub enum DecideFuture<F, ResB> {
        Allowed { #[pin] inner: F, labels: Option<EdgeLabels> },
        Denied { answer: Option<Labelled<Answer<ResB>>> },
    }
}

impl<F, ResB, E> Future for DecideFuture<F, ResB>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Labelled<Answer<ResB>>, Labelled<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            DecideProj::Allowed { inner, labels } => {
                let result = std::task::ready!(inner.poll(cx));
                let labels = labels.take().unwrap_or_else(|| EdgeLabels {
                    service: "unknown".into(),
                    route: "unknown".into(),
                    ..EdgeLabels::default()
                });
                Poll::Ready(match result {
                    Ok(response) => Ok(Labelled {
                        value: response.map(Either::Left),
                        labels,
                    }),
                    Err(value) => Err(Labelled { value, labels }),
                })
            }
            DecideProj::Denied { answer } => match answer.take() {
                Some(answer) => Poll::Ready(Ok(answer)),
                None => Poll::Pending,
            },
        }
    }
}
