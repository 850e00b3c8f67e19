//! The outbound client: a `tower::Service<http::Request<B>>` for hyper and for tonic-generated
//! clients.
//!
//! A request's authority names a mesh service (`svc.ns`, `svc.ns.svc.cluster.local`, with or
//! without a port). The service's TrafficSplit (with its `matches`) picks a backend service; power
//! of two choices by requests in flight picks one of its endpoints; the request goes over a pooled
//! mTLS connection to it, after checking that the server presented the SPIFFE ID bound to that
//! endpoint. If connecting to an endpoint fails, another is tried: the request had not been sent.
//! A request that reached a server is never sent again. An endpoint whose identity is revoked
//! (the control's deny list) is never sent anything, and its connections are dropped.

mod body;
mod endpoint;
mod error;
mod layer;

pub use body::OutboundBody;
pub use error::OutboundError;
pub use layer::{MeshLayer, MeshOr};

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use smi_core::policy::{HttpRequest, ServiceName};

use crate::mesh::{Endpoint, Mesh, PolicyState};
use crate::metrics::{Direction, Observation};
use endpoint::{EndpointConns, SendError};

/// Connection state by endpoint address (hashbrown's foldhash: looked up on every request).
type ConnsMap<B> = hashbrown::HashMap<SocketAddr, Arc<EndpointConns<B>>>;

/// Calls mesh services. Cheap to clone; clones share connections.
pub struct MeshClient<B> {
    mesh: Mesh,
    conns: Arc<Conns<B>>,
}

/// The connections of a client (and its clones), by endpoint.
struct Conns<B> {
    by_addr: ArcSwap<ConnsMap<B>>,
    /// The policy version the map was last pruned against: endpoints that left the policy are
    /// dropped (closing their connections) on the first request after a change.
    pruned_at: AtomicU64,
}

impl<B> Clone for MeshClient<B> {
    fn clone(&self) -> Self {
        Self {
            mesh: self.mesh.clone(),
            conns: self.conns.clone(),
        }
    }
}

impl<B> std::fmt::Debug for MeshClient<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshClient")
            .field("identity", &self.mesh.identity().to_string())
            .field("endpoints", &self.connected_endpoints())
            .finish()
    }
}

impl<B: OutboundBody> MeshClient<B> {
    pub fn new(mesh: Mesh) -> Self {
        Self {
            mesh,
            conns: Arc::new(Conns {
                by_addr: ArcSwap::default(),
                pruned_at: AtomicU64::new(0),
            }),
        }
    }

    /// The mesh this client calls through.
    pub fn mesh(&self) -> &Mesh {
        &self.mesh
    }

    /// Sends one request (what `Service::call` does), and records it in the mesh's metrics.
    pub async fn send(&self, request: Request<B>) -> Result<Response<Incoming>, OutboundError> {
        let started = std::time::Instant::now();
        let mut destination = None;
        let result = self.route_and_send(request, &mut destination).await;
        let status = match &result {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        };
        self.mesh.metrics().record(Observation {
            direction: Direction::Outbound,
            source: self.mesh.identity_text().into(),
            destination: destination.map_or_else(|| "unknown".into(), Into::into),
            route: if result.is_ok() { "sent" } else { "error" }.into(),
            status,
            duration: started.elapsed(),
        });
        result
    }

    async fn route_and_send(
        &self,
        request: Request<B>,
        destination: &mut Option<Arc<str>>,
    ) -> Result<Response<Incoming>, OutboundError> {
        let authority = authority_of(&request).ok_or(OutboundError::NoAuthority)?;
        let policy = self.mesh.policy_full();
        self.prune(&policy);
        let snapshot = &policy.snapshot;
        let service =
            ServiceName::parse(authority.as_str(), None, &snapshot.options().cluster_domain)
                .map_err(|e| OutboundError::NotAService(e.to_string()))?;
        let backend = {
            let path = request.uri().path();
            let mut http = HttpRequest::new(request.method().as_str(), path, request.headers());
            http.authority = Some(authority.as_str());
            let route = snapshot.route(service, Some(&http));
            route
                .pick(&mut rand::rng())
                .map_or(service.name, |b| b.service.as_str())
        };
        let namespace = service.namespace;
        let Some(known) = policy.service(namespace, backend) else {
            let name = format!("{namespace}/{backend}");
            *destination = Some(name.as_str().into());
            return Err(OutboundError::UnknownService(name));
        };
        *destination = Some(known.label.clone());
        let endpoints = &known.endpoints[..];
        if endpoints.is_empty() {
            return Err(OutboundError::NoEndpoints(format!("{namespace}/{backend}")));
        }
        let revoked = |e: &Endpoint| snapshot.is_revoked(&e.identity);
        if endpoints.iter().all(revoked) {
            return Err(OutboundError::Revoked(format!("{namespace}/{backend}")));
        }

        let tls = self.mesh.client_tls();
        let mut failed: Vec<SocketAddr> = Vec::new();
        let mut last_error = None;
        let mut request = Some(request);
        // A request handed back unsent (its connection was closing) is tried again, on a new
        // connection; a few times at most, so that a server closing every connection at once
        // ends in an error rather than a loop.
        let mut unsent_retries = 3;
        while let Some(endpoint) = pick(endpoints, &failed, revoked, |e| self.conns_of(e).load()) {
            let conns = self.conns_of(endpoint);
            match conns.sender(tls.clone()).await {
                Ok(mut sender) => {
                    let Some(mut outgoing) = request.take() else {
                        break;
                    };
                    prepare(&mut outgoing, &authority, sender.is_h2());
                    let _in_flight = conns.start();
                    let sent = sender.send(outgoing).await;
                    conns.release(sender);
                    match sent {
                        Ok(response) => return Ok(response),
                        Err(SendError::NotSent(unsent, source)) if unsent_retries > 0 => {
                            tracing::debug!(addr = %endpoint.addr, error = %source, "connection closing; sending on a new one");
                            unsent_retries -= 1;
                            conns.forget_h2();
                            request = Some(*unsent);
                        }
                        Err(SendError::NotSent(_, source) | SendError::Failed(source)) => {
                            return Err(OutboundError::Http {
                                addr: endpoint.addr,
                                source,
                            });
                        }
                    }
                }
                Err(e) if e.before_request() => {
                    tracing::debug!(addr = %endpoint.addr, error = %e, "endpoint unavailable; trying another");
                    failed.push(endpoint.addr);
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        // Every endpoint failed before the request was sent.
        Err(last_error
            .unwrap_or_else(|| OutboundError::NoEndpoints(format!("{namespace}/{backend}"))))
    }

    /// The connection state of an endpoint (created on first use; replaced if the address is
    /// now bound to another identity).
    fn conns_of(&self, endpoint: &Endpoint) -> Arc<EndpointConns<B>> {
        if let Some(c) = self.conns.by_addr.load().get(&endpoint.addr)
            && c.identity == endpoint.identity
        {
            return c.clone();
        }
        let fresh = Arc::new(EndpointConns::new(endpoint.addr, endpoint.identity.clone()));
        self.conns.by_addr.rcu(|map| {
            let mut map = ConnsMap::clone(map);
            map.insert(endpoint.addr, fresh.clone());
            map
        });
        fresh
    }
}

impl<B> MeshClient<B> {
    /// How many endpoints this client (with its clones) keeps connection state for: those it
    /// has called that are still in the policy.
    pub fn connected_endpoints(&self) -> usize {
        self.conns.by_addr.load().len()
    }

    /// Drops the connections to endpoints that are no longer in the policy (or are bound to
    /// another identity now, or its identity is revoked), once per policy version: one atomic
    /// load per request otherwise.
    fn prune(&self, policy: &PolicyState) {
        // Not `>=`: a restarted control numbers its versions from 1 again. A request holding an
        // older state may prune against it; what it drops is reconnected on demand.
        let seen = self.conns.pruned_at.load(Ordering::Relaxed);
        if seen == policy.version
            || self
                .conns
                .pruned_at
                .compare_exchange(seen, policy.version, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        // During a control restart the endpoint lists may be partial; PolicyState keeps the
        // previous endpoints then, so nothing still serving is dropped here.
        self.conns.by_addr.rcu(|map| {
            map.iter()
                .filter(|(addr, c)| policy.lists(**addr, &c.identity))
                .map(|(addr, c)| (*addr, c.clone()))
                .collect::<ConnsMap<B>>()
        });
    }
}

impl<B: OutboundBody> tower_service::Service<Request<B>> for MeshClient<B> {
    type Response = Response<Incoming>;
    type Error = OutboundError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Incoming>, OutboundError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let client = self.clone();
        Box::pin(async move { client.send(request).await })
    }
}

/// Power of two choices: of two random endpoints not yet failed nor revoked, the one with fewer
/// requests in flight.
fn pick<'e>(
    endpoints: &'e [Endpoint],
    failed: &[SocketAddr],
    revoked: impl Fn(&Endpoint) -> bool,
    load: impl Fn(&Endpoint) -> usize,
) -> Option<&'e Endpoint> {
    let usable = |e: &&Endpoint| !failed.contains(&e.addr) && !revoked(e);
    let count = endpoints.iter().filter(usable).count();
    let nth = |i: usize| endpoints.iter().filter(usable).nth(i);
    match count {
        0 => None,
        1 => nth(0),
        n => {
            let a = rand::random_range(0..n);
            let b = (a + rand::random_range(1..n)) % n;
            let (a, b) = (nth(a)?, nth(b)?);
            Some(if load(b) < load(a) { b } else { a })
        }
    }
}

/// The authority the caller addressed: the URI's, or the `Host` header's.
fn authority_of<B>(request: &Request<B>) -> Option<Authority> {
    if let Some(authority) = request.uri().authority() {
        return Some(authority.clone());
    }
    request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse().ok())
}

/// HTTP/2 requests carry scheme and authority in the URI; HTTP/1.1 requests an origin-form URI
/// and a `Host` header.
fn prepare<B>(request: &mut Request<B>, authority: &Authority, h2: bool) {
    let path = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    let mut parts = http::uri::Parts::default();
    parts.path_and_query = Some(path);
    if h2 {
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(authority.clone());
    } else if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
        request.headers_mut().insert(http::header::HOST, host);
    }
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
}
