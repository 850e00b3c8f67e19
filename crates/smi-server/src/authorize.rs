//! `AuthorizeLayer`: every request is decided by the mesh's current SMI policy (deny unless a
//! TrafficTarget allows it). A denied HTTP request gets `403` with a short body; a denied gRPC
//! call gets `PERMISSION_DENIED`. The policy is read per request, so a change applies to
//! connections that are already open.

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

use crate::peer::Peer;

/// Enforces SMI policy in front of a service served with [`crate::serve`].
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

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let started = Instant::now();
        let source: StringValue = peer_of(&request)
            .map_or_else(|| "unauthenticated".into(), |p| p.identity_text().into());
        match self.decide(&request) {
            Ok(route) => AuthorizeFuture::Allowed {
                inner: self.inner.call(request),
                pending: Some(Pending {
                    mesh: self.mesh.clone(),
                    source,
                    route,
                    started,
                }),
            },
            Err(code) => {
                let response = denied(&request, code);
                Pending {
                    mesh: self.mesh.clone(),
                    source,
                    route: "denied".into(),
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
    fn decide<B>(&self, request: &Request<B>) -> Result<StringValue, &'static str> {
        let Some(peer) = peer_of(request) else {
            return Err("unauthenticated");
        };
        let authority = request.uri().authority().map(|a| a.as_str()).or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        });
        let mut http = HttpRequest::new(
            request.method().as_str(),
            request.uri().path(),
            request.headers(),
        );
        http.authority = authority;
        let decision = policy::Request::http(Some(peer.local.port()), http);
        let state = self.mesh.policy();
        match state
            .snapshot
            .authorize(self.mesh.identity(), Some(&peer.identity), &decision)
        {
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

fn denied<B, ResB>(request: &Request<B>, code: &'static str) -> Answer<ResB> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
    if is_grpc(request) {
        // A trailers-only gRPC response: status in the headers.
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert("grpc-status", HeaderValue::from_static("7"));
        if let Ok(message) = HeaderValue::from_str(&format!("denied by SMI policy ({code})")) {
            headers.insert("grpc-message", message);
        }
    } else {
        *response.status_mut() = StatusCode::FORBIDDEN;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        *response.body_mut() = Either::Right(Full::new(Bytes::from(format!(
            "denied by SMI policy: {code}\n"
        ))));
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
