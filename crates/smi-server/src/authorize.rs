//! `AuthorizeLayer`: every request is decided by the mesh's current SMI policy (deny unless a
//! TrafficTarget allows it). A denied HTTP request gets `403` with a short body; a denied gRPC
//! call gets `PERMISSION_DENIED`. The policy is read per request, so a change applies to
//! connections that are already open. Before deciding, the request is made canonical (its path
//! normalized, its authority and matched headers unambiguous; see [`crate::canonical`]): an
//! ambiguous one gets `400`, and the application receives the canonical request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{Either, Full};
use smi_client::Mesh;
use smi_client::metrics::{Direction, Observation, StringValue};
use smi_core::policy::{self, HttpRequest};
use tower_layer::Layer;
use tower_service::Service;

use crate::canonical::{Invalid, authority, canonicalize};
use crate::peer::Peer;

/// Enforces SMI policy in front of a service served with [`crate::serve`].
///
/// Wrap the whole application with it (`tower::Layer::layer(&authorize, router)`), never an
/// axum `Router::layer` or a route: those run after the router chose a route from the raw path,
/// and the request must be routed by the normalized path that was authorized.
#[derive(Clone, Debug)]
pub struct AuthorizeLayer {
    mesh: Mesh,
}

impl AuthorizeLayer {
    pub fn new(mesh: Mesh) -> Self {
        Self { mesh }
    }
}

impl<S> Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Authorize<S> {
        Authorize {
            inner,
            mesh: self.mesh.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Authorize<S> {
    inner: S,
    mesh: Mesh,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Authorize<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<Either<ResB, Full<Bytes>>>;
    type Error = S::Error;
    type Future = AuthorizeFuture<S::Future, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqB>) -> Self::Future {
        let started = Instant::now();
        let source: StringValue = peer_of(&request)
            .map_or_else(|| "unauthenticated".into(), |p| p.identity_text().into());
        let state = self.mesh.policy();
        // Decide on the canonical request, and pass on that same request: the application must
        // see the path and headers that were authorized, not another spelling of them.
        let decision = canonicalize(&mut request, state.snapshot.matched_headers())
            .map_err(Refusal::Invalid)
            .and_then(|()| {
                self.decide(&state.snapshot, &request)
                    .map_err(Refusal::Denied)
            });
        match decision {
            Ok(route) => AuthorizeFuture::Allowed {
                inner: self.inner.call(request),
                pending: Some(Pending {
                    mesh: self.mesh.clone(),
                    source,
                    route,
                    started,
                }),
            },
            Err(refusal) => {
                let response = refused(&request, refusal);
                Pending {
                    mesh: self.mesh.clone(),
                    source,
                    route: refusal.route_label().into(),
                    started,
                }
                .record(response.status().as_u16());
                AuthorizeFuture::Denied {
                    response: Some(response),
                }
            }
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

/// What an allowed request's metrics need once its response head is ready.
#[derive(Debug)]
pub struct Pending {
    mesh: Mesh,
    source: StringValue,
    route: StringValue,
    started: Instant,
}

impl Pending {
    fn record(self, status: u16) {
        self.mesh.metrics().record(Observation {
            direction: Direction::Inbound,
            source: self.source,
            destination: self.mesh.identity_text().into(),
            route: self.route,
            status,
            duration: self.started.elapsed(),
        });
    }
}

impl<S> Authorize<S> {
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
        match snapshot.authorize(self.mesh.identity(), Some(&peer.identity), &decision) {
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

type Answer<ResB> = Response<Either<ResB, Full<Bytes>>>;

pin_project_lite::pin_project! {
    /// The inner service's response, or the refusal.
    #[project = AuthorizeProj]
    pub enum AuthorizeFuture<F, ResB> {
        Allowed { #[pin] inner: F, pending: Option<Pending> },
        Denied { response: Option<Answer<ResB>> },
    }
}

impl<F, ResB, E> Future for AuthorizeFuture<F, ResB>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Answer<ResB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AuthorizeProj::Allowed { inner, pending } => {
                let result = std::task::ready!(inner.poll(cx));
                if let (Ok(response), Some(pending)) = (&result, pending.take()) {
                    pending.record(response.status().as_u16());
                }
                Poll::Ready(result.map(|response| response.map(Either::Left)))
            }
            AuthorizeProj::Denied { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => Poll::Pending,
            },
        }
    }
}
