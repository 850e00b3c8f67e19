//! `MeshLayer`: put the mesh in front of an existing HTTP client. Requests whose authority names
//! a service the mesh knows go through [`MeshClient`]; every other request goes to the inner
//! client unchanged (e.g. calls to the internet through a hyper-util client).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use hyper::body::Incoming;
use smi_core::policy::ServiceName;
use tower_layer::Layer;
use tower_service::Service;

use super::request::authority_of;
use super::{MeshClient, OutboundBody, ResponseFuture};
use crate::handles::Handles;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Wraps a client so that mesh services are called through the mesh.
pub struct MeshLayer<B> {
    handles: Handles,
    _body: PhantomData<fn(B)>,
}

impl<B> MeshLayer<B> {
    /// On a mesh's handles (pass `&mesh` or `mesh`).
    pub fn new(handles: impl Into<Handles>) -> Self {
        Self {
            handles: handles.into(),
            _body: PhantomData,
        }
    }
}

impl<B> Clone for MeshLayer<B> {
    fn clone(&self) -> Self {
        Self::new(self.handles.clone())
    }
}

impl<B> std::fmt::Debug for MeshLayer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshLayer").finish_non_exhaustive()
    }
}

impl<S, B: OutboundBody> Layer<S> for MeshLayer<B> {
    type Service = MeshOr<S, B>;

    fn layer(&self, inner: S) -> MeshOr<S, B> {
        MeshOr {
            mesh: MeshClient::new(self.handles.clone()),
            inner,
        }
    }
}

/// The service [`MeshLayer`] makes.
#[derive(Clone, Debug)]
pub struct MeshOr<S, B> {
    mesh: MeshClient<B>,
    inner: S,
}

impl<S, B: OutboundBody> MeshOr<S, B> {
    /// Whether the request is for a service the control service told us about.
    fn is_mesh(&self, request: &Request<B>) -> bool {
        let Some(authority) = authority_of(request) else {
            return false;
        };
        let policy = self.mesh.policy().load();
        let domain = &policy.snapshot.options().cluster_domain;
        ServiceName::parse(authority.as_str(), None, domain).is_ok_and(|service| {
            policy.knows(service.namespace, service.name)
                || policy.snapshot.route(service, None).split().is_some()
        })
    }
}

impl<S, B> Service<Request<B>> for MeshOr<S, B>
where
    B: OutboundBody,
    S: Service<Request<B>, Response = Response<Incoming>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = MeshOrFuture<S::Future, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if self.is_mesh(&request) {
            MeshOrFuture::Mesh {
                future: self.mesh.call(request),
            }
        } else {
            MeshOrFuture::Inner {
                future: self.inner.call(request),
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The mesh's response, or the inner client's.
    #[project = MeshOrProj]
    pub enum MeshOrFuture<F, B> {
        Mesh { #[pin] future: ResponseFuture<B> },
        Inner { #[pin] future: F },
    }
}

impl<F, E, B> Future for MeshOrFuture<F, B>
where
    F: Future<Output = Result<Response<Incoming>, E>>,
    E: Into<BoxError>,
    B: OutboundBody,
{
    type Output = Result<Response<Incoming>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(match self.project() {
            MeshOrProj::Mesh { future } => ready!(future.poll(cx)).map_err(Into::into),
            MeshOrProj::Inner { future } => ready!(future.poll(cx)).map_err(Into::into),
        })
    }
}
