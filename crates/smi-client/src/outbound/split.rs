//! The first outbound step: which service a request is for, and which backend of its
//! TrafficSplit (with its `matches`) serves it.
//!
//! The request's authority names a mesh service (`svc.ns`, `svc.ns.svc.cluster.local`, with or
//! without a port). A service whose endpoints have not arrived yet (a workload that just
//! started, a server that registered a moment ago) is waited for, up to the client's endpoint
//! wait ([`super::DEFAULT_ENDPOINT_WAIT`] by default), re-routing on every policy update; then
//! the request fails with `UnknownService` or `NoEndpoints`. A service missing from a workload
//! that lists its `calls` is not waited for: the list is what the view holds, so the service is
//! one it does not call. Every answer carries the labels of its edge for the metrics layer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use smi_core::policy::{HttpRequest, ServiceName};
use tower_service::Service;

use super::OutboundError;
use super::request::authority_of;
use super::retry::Reached;
use crate::handles::PolicyHandle;
use crate::mesh::{PolicyState, ServiceEndpoints};
use crate::metrics::{EdgeLabels, Labelled, Protocol, StringValue};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Answer = Result<Labelled<Response<Incoming>>, Labelled<OutboundError>>;
/// What the dispatch step answers.
type Sent = Result<Reached<Response<Incoming>>, Reached<OutboundError>>;

/// A request with the backend chosen for it.
pub(crate) struct Routed<B> {
    pub(crate) request: Request<B>,
    pub(crate) authority: Authority,
    /// The policy the route was chosen by (revocations are checked against it).
    pub(crate) policy: Arc<PolicyState>,
    pub(crate) backend: ServiceEndpoints,
}

/// Routes each request to a backend service, then hands it to `inner`.
pub(crate) struct Split<S> {
    policy: PolicyHandle,
    endpoint_wait: Duration,
    inner: S,
}

impl<S: Clone> Clone for Split<S> {
    fn clone(&self) -> Self {
        Self {
            policy: self.policy.clone(),
            endpoint_wait: self.endpoint_wait,
            inner: self.inner.clone(),
        }
    }
}

impl<S> Split<S> {
    pub(crate) fn new(policy: PolicyHandle, endpoint_wait: Duration, inner: S) -> Self {
        Self {
            policy,
            endpoint_wait,
            inner,
        }
    }

    pub(crate) fn inner(&self) -> &S {
        &self.inner
    }

    pub(crate) fn policy(&self) -> &PolicyHandle {
        &self.policy
    }

    pub(crate) fn set_endpoint_wait(&mut self, wait: Duration) {
        self.endpoint_wait = wait;
    }
}

/// What a request's edge names: the service it called and the split backend, if any.
#[derive(Clone, Debug)]
struct Target {
    service: StringValue,
    backend: StringValue,
}

impl Target {
    fn unknown() -> Self {
        Self {
            service: "unknown".into(),
            backend: StringValue::EMPTY,
        }
    }

    /// Labels until the request is answered (route `error`; the peer is set by the answer).
    fn labels(self, protocol: Protocol) -> EdgeLabels {
        EdgeLabels {
            service: self.service,
            backend: self.backend,
            route: "error".into(),
            protocol,
            ..EdgeLabels::default()
        }
    }
}

/// A refusal, labelled; a revoked service is the mesh refusing, a denial.
fn refusal(value: OutboundError, mut labels: EdgeLabels) -> Labelled<OutboundError> {
    labels.denied = matches!(value, OutboundError::Revoked(_));
    Labelled { value, labels }
}

/// Why a request has no backend yet.
enum Unrouted {
    /// Final: waiting cannot help.
    Refused(OutboundError, Target),
    /// The service or its endpoints are not known yet.
    NotYet(OutboundError, Target),
}

/// The backend for `request` under `policy`, and the labels of its edge. (The error is large,
/// and returned by value: it is moved into the answer, not boxed per refused request.)
#[allow(clippy::result_large_err)]
fn route<B>(
    policy: &Arc<PolicyState>,
    authority: &Authority,
    request: &Request<B>,
) -> Result<(ServiceEndpoints, Target), Unrouted> {
    let snapshot = &policy.snapshot;
    let service = ServiceName::parse(authority.as_str(), None, &snapshot.options().cluster_domain)
        .map_err(|e| {
            Unrouted::Refused(OutboundError::NotAService(e.to_string()), Target::unknown())
        })?;
    let split;
    let backend = {
        let mut http = HttpRequest::new(
            request.method().as_str(),
            request.uri().path(),
            request.headers(),
        );
        http.authority = Some(authority.as_str());
        let picked = snapshot.route(service, Some(&http)).pick(&mut rand::rng());
        split = picked.is_some();
        picked.map_or(service.name, |b| b.service.as_str())
    };
    let namespace = service.namespace;
    // The edge names the service called and, when a split chose, its backend.
    let target = |backend: StringValue| {
        if split {
            Target {
                service: policy
                    .split_root_label(namespace, service.name)
                    .map_or_else(|| service.to_string().into(), StringValue::from),
                backend,
            }
        } else {
            Target {
                service: backend,
                backend: StringValue::EMPTY,
            }
        }
    };
    let Some(known) = policy.service(namespace, backend) else {
        let name = format!("{namespace}/{backend}");
        let error = OutboundError::UnknownService(name.clone());
        let target = target(name.into());
        return Err(if policy.may_learn_services() {
            Unrouted::NotYet(error, target)
        } else {
            Unrouted::Refused(error, target)
        });
    };
    let target = target(known.label.clone().into());
    if known.endpoints.is_empty() {
        return Err(Unrouted::NotYet(
            OutboundError::NoEndpoints(known.label.to_string()),
            target,
        ));
    }
    if known
        .endpoints
        .iter()
        .all(|e| snapshot.is_revoked(&e.identity))
    {
        return Err(Unrouted::Refused(
            OutboundError::Revoked(known.label.to_string()),
            target,
        ));
    }
    Ok((known.clone(), target))
}

impl<S, B> Service<Request<B>> for Split<S>
where
    S: Service<Routed<B>, Response = Reached<Response<Incoming>>, Error = Reached<OutboundError>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Labelled<Response<Incoming>>;
    type Error = Labelled<OutboundError>;
    type Future = SplitFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(|e| Labelled {
            value: e.value,
            labels: Target::unknown().labels(Protocol::Http),
        })
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let protocol = Protocol::of(request.headers());
        let Some(authority) = authority_of(&request) else {
            return SplitFuture::refused(
                OutboundError::NoAuthority,
                Target::unknown().labels(protocol),
            );
        };
        let policy = self.policy.load_full();
        match route(&policy, &authority, &request) {
            Ok((backend, target)) => {
                let labels = target.labels(protocol);
                SplitFuture::Dispatched {
                    inner: self.inner.call(Routed {
                        request,
                        authority,
                        policy,
                        backend,
                    }),
                    labels: Some(labels),
                }
            }
            Err(Unrouted::NotYet(error, _)) if !self.endpoint_wait.is_zero() => {
                tracing::debug!(%error, wait = ?self.endpoint_wait, "waiting for the service's endpoints");
                SplitFuture::Waiting {
                    answer: Box::pin(when_routable(self.clone(), request, authority, protocol)),
                }
            }
            Err(Unrouted::NotYet(error, target) | Unrouted::Refused(error, target)) => {
                SplitFuture::refused(error, target.labels(protocol))
            }
        }
    }
}

/// The slow path: re-routes on each policy update until the request can go, or until the
/// endpoint wait is over (then with the last reason it could not).
async fn when_routable<S, B>(
    mut split: Split<S>,
    request: Request<B>,
    authority: Authority,
    protocol: Protocol,
) -> Answer
where
    S: Service<Routed<B>, Response = Reached<Response<Incoming>>, Error = Reached<OutboundError>>,
{
    // Subscribed before routing again: an update between the first attempt and here is not
    // missed.
    let mut changes = split.policy.changed();
    let deadline = tokio::time::Instant::now() + split.endpoint_wait;
    loop {
        let policy = split.policy.load_full();
        let (error, target) = match route(&policy, &authority, &request) {
            Ok((backend, target)) => {
                let labels = target.labels(protocol);
                let routed = Routed {
                    request,
                    authority,
                    policy,
                    backend,
                };
                let sent = match std::future::poll_fn(|cx| split.inner.poll_ready(cx)).await {
                    Ok(()) => split.inner.call(routed).await,
                    Err(e) => Err(e),
                };
                return answered(sent, labels);
            }
            Err(Unrouted::Refused(value, target)) => {
                return Err(refusal(value, target.labels(protocol)));
            }
            Err(Unrouted::NotYet(error, target)) => (error, target),
        };
        let changed = tokio::time::timeout_at(deadline, changes.changed()).await;
        if !matches!(changed, Ok(Ok(()))) {
            return Err(refusal(error, target.labels(protocol)));
        }
    }
}

/// The backend's answer with its edge: the endpoint that answered, and route `sent`, or `error`
/// when it failed. (Returned by value like every `Answer`: it is moved into the future's output,
/// not boxed per request.)
#[allow(clippy::result_large_err)]
fn answered(sent: Sent, mut labels: EdgeLabels) -> Answer {
    labels.route = if sent.is_ok() { "sent" } else { "error" }.into();
    match sent {
        Ok(Reached { value, peer }) => {
            labels.peer = peer;
            Ok(Labelled { value, labels })
        }
        Err(Reached { value, peer }) => {
            labels.peer = peer;
            Err(Labelled { value, labels })
        }
    }
}

pin_project_lite::pin_project! {
    /// The backend's answer, a refusal, or (while endpoints are awaited) the slow path.
    #[project = SplitProj]
    pub(crate) enum SplitFuture<F> {
        Dispatched { #[pin] inner: F, labels: Option<EdgeLabels> },
        Refused { refusal: Option<Labelled<OutboundError>> },
        Waiting { answer: BoxFuture<Answer> },
    }
}

impl<F> SplitFuture<F> {
    fn refused(value: OutboundError, labels: EdgeLabels) -> Self {
        SplitFuture::Refused {
            refusal: Some(refusal(value, labels)),
        }
    }
}

impl<F> Future for SplitFuture<F>
where
    F: Future<Output = Sent>,
{
    type Output = Answer;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        match self.project() {
            SplitProj::Dispatched { inner, labels } => {
                let sent = ready!(inner.poll(cx));
                let labels = labels
                    .take()
                    .unwrap_or_else(|| Target::unknown().labels(Protocol::Http));
                Poll::Ready(answered(sent, labels))
            }
            SplitProj::Refused { refusal } => match refusal.take() {
                Some(refusal) => Poll::Ready(Err(refusal)),
                None => Poll::Pending,
            },
            SplitProj::Waiting { answer } => answer.as_mut().poll(cx),
        }
    }
}
