//! Sending a routed request: balance over the backend's endpoints, connect (TCP, TLS, identity
//! check) when no pooled connection is ready, send; and retry what was never sent.
//!
//! Two things are retried, both only while nothing of the request reached a server: an endpoint
//! that cannot be connected to (another endpoint is tried), and a request a closing connection
//! handed back unsent (it goes on a new connection, a few times at most, so that a server
//! closing every connection ends in an error rather than a loop).
//!
//! [`DispatchFuture`] is a state machine, not an `async` block: the per-request path allocates
//! only hyper's response future, which cannot be named on stable Rust and is boxed; connecting
//! (once per connection, not per request) is boxed too.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use rustls::ClientConfig;

use super::OutboundError;
use super::balance::{Pool, pick};
use super::body::OutboundBody;
use super::endpoint::{EndpointConns, InFlight, SendError, Sender};
use super::request::prepare;
use super::split::Routed;
use crate::handles::TlsHandle;
use crate::mesh::{Endpoint, PolicyState, ServiceEndpoints};
use crate::metrics::PeerNames;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A send's outcome, with the connection it went on (HTTP/1.1 ones go back to the pool).
type Sent<B> = (Sender<B>, Result<Response<Incoming>, SendError<B>>);

/// How many times a request handed back unsent is sent again.
const UNSENT_RETRIES: u8 = 3;

/// A dispatched request's answer (or error), with the endpoint it last went to, as the metrics
/// name it (`None` when no endpoint was tried).
#[derive(Debug)]
pub(crate) struct Reached<T> {
    pub(crate) value: T,
    pub(crate) peer: Option<Arc<PeerNames>>,
}

/// Sends routed requests over the client's pooled connections.
pub(crate) struct Dispatch<B> {
    pool: Arc<Pool<B>>,
    tls: TlsHandle,
}

impl<B> Clone for Dispatch<B> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            tls: self.tls.clone(),
        }
    }
}

impl<B> Dispatch<B> {
    pub(crate) fn new(tls: TlsHandle) -> Self {
        Self {
            pool: Arc::default(),
            tls,
        }
    }

    pub(crate) fn pool(&self) -> &Pool<B> {
        &self.pool
    }
}

impl<B: OutboundBody> tower_service::Service<Routed<B>> for Dispatch<B> {
    type Response = Reached<Response<Incoming>>;
    type Error = Reached<OutboundError>;
    type Future = DispatchFuture<B>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, routed: Routed<B>) -> DispatchFuture<B> {
        DispatchFuture {
            request: Some(routed.request),
            authority: routed.authority,
            policy: routed.policy,
            backend: routed.backend,
            pool: self.pool.clone(),
            tls: self.tls.clone(),
            failed: Vec::new(),
            last_error: None,
            unsent_retries: UNSENT_RETRIES,
            peer: None,
            state: State::Pick,
        }
    }
}

/// One request's way to a response.
pub(crate) struct DispatchFuture<B> {
    request: Option<Request<B>>,
    authority: Authority,
    policy: Arc<PolicyState>,
    backend: ServiceEndpoints,
    pool: Arc<Pool<B>>,
    tls: TlsHandle,
    /// Endpoints that could not be connected to, for this request (allocated only on failure).
    failed: Vec<SocketAddr>,
    last_error: Option<OutboundError>,
    unsent_retries: u8,
    /// The endpoint last tried.
    peer: Option<Arc<PeerNames>>,
    state: State<B>,
}

enum State<B> {
    /// Choose an endpoint (again).
    Pick,
    Connecting {
        conns: Arc<EndpointConns<B>>,
        connected: BoxFuture<Result<Sender<B>, OutboundError>>,
    },
    Sending {
        conns: Arc<EndpointConns<B>>,
        sent: BoxFuture<Sent<B>>,
        _in_flight: InFlight<B>,
    },
}

impl<B: OutboundBody> DispatchFuture<B> {
    /// The next state from `Pick`, or the end: every endpoint failed before the request was
    /// sent (or none is usable).
    fn pick(&mut self) -> Result<State<B>, OutboundError> {
        let snapshot = &self.policy.snapshot;
        let pool = &self.pool;
        let endpoint: &Endpoint = pick(
            &self.backend.endpoints,
            &self.failed,
            |e| snapshot.is_revoked(&e.identity),
            |e| pool.load_of(e),
        )
        .ok_or_else(|| {
            self.last_error
                .take()
                .unwrap_or_else(|| OutboundError::NoEndpoints(self.backend.label.to_string()))
        })?;
        let conns = pool.conns_of(endpoint);
        Ok(match conns.reusable() {
            Some(sender) => self.send(conns, sender)?,
            None => {
                let tls: Arc<ClientConfig> = self.tls.client();
                let connecting = conns.clone();
                State::Connecting {
                    conns,
                    connected: Box::pin(async move { connecting.sender(tls).await }),
                }
            }
        })
    }

    fn send(
        &mut self,
        conns: Arc<EndpointConns<B>>,
        mut sender: Sender<B>,
    ) -> Result<State<B>, OutboundError> {
        let mut request = self
            .request
            .take()
            .ok_or_else(|| OutboundError::NoEndpoints(self.backend.label.to_string()))?;
        prepare(&mut request, &self.authority, sender.is_h2());
        let in_flight = conns.start();
        Ok(State::Sending {
            conns,
            sent: Box::pin(async move {
                let sent = sender.send(request).await;
                (sender, sent)
            }),
            _in_flight: in_flight,
        })
    }
}

impl<B: OutboundBody> Future for DispatchFuture<B> {
    type Output = Result<Reached<Response<Incoming>>, Reached<OutboundError>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            let next = match &mut this.state {
                State::Pick => this.pick(),
                State::Connecting { conns, connected } => {
                    let conns = conns.clone();
                    let connected = ready!(connected.as_mut().poll(cx));
                    this.peer = Some(conns.peer_names());
                    match connected {
                        Ok(sender) => this.send(conns, sender),
                        Err(e) if e.before_request() => {
                            tracing::debug!(addr = %conns.addr, error = %e, "endpoint unavailable; trying another");
                            this.failed.push(conns.addr);
                            this.last_error = Some(e);
                            Ok(State::Pick)
                        }
                        Err(e) => Err(e),
                    }
                }
                State::Sending { conns, sent, .. } => {
                    let (sender, sent) = ready!(sent.as_mut().poll(cx));
                    let conns = conns.clone();
                    conns.release(sender);
                    this.peer = Some(conns.peer_names());
                    match sent {
                        Ok(response) => {
                            // The request is no longer in flight on that endpoint.
                            this.state = State::Pick;
                            return Poll::Ready(Ok(Reached {
                                value: response,
                                peer: this.peer.take(),
                            }));
                        }
                        Err(SendError::NotSent(unsent, source)) if this.unsent_retries > 0 => {
                            tracing::debug!(addr = %conns.addr, error = %source, "connection closing; sending on a new one");
                            this.unsent_retries -= 1;
                            conns.forget_h2();
                            this.request = Some(*unsent);
                            Ok(State::Pick)
                        }
                        Err(SendError::NotSent(_, source) | SendError::Failed(source)) => {
                            Err(OutboundError::Http {
                                addr: conns.addr,
                                source,
                            })
                        }
                    }
                }
            };
            match next {
                Ok(state) => this.state = state,
                Err(value) => {
                    return Poll::Ready(Err(Reached {
                        value,
                        peer: this.peer.take(),
                    }));
                }
            }
        }
    }
}
