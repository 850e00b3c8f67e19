//! Balancing over a backend's endpoints: power of two choices by requests in flight, skipping
//! endpoints that failed for this request and endpoints whose identity is revoked; and the
//! connection state of every endpoint a client has called ([`Pool`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;

use super::endpoint::EndpointConns;
use crate::mesh::{Endpoint, PolicyState};

/// Connection state by endpoint address (hashbrown's foldhash: looked up on every request).
type ConnsMap<B> = hashbrown::HashMap<SocketAddr, Arc<EndpointConns<B>>>;

/// The endpoint to try next: of two picked at random among the usable ones, the one with fewer
/// requests in flight. `None` when no endpoint is usable.
pub(crate) fn pick<'a>(
    endpoints: &'a [Endpoint],
    failed: &[SocketAddr],
    revoked: impl Fn(&Endpoint) -> bool,
    load: impl Fn(&Endpoint) -> usize,
) -> Option<&'a Endpoint> {
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

/// The connections of a client (and its clones), by endpoint.
pub(crate) struct Pool<B> {
    by_addr: ArcSwap<ConnsMap<B>>,
    /// The policy version the map was last pruned against: endpoints that left the policy are
    /// dropped (closing their connections) on the first request after a change.
    pruned_at: AtomicU64,
}

impl<B> Default for Pool<B> {
    fn default() -> Self {
        Self {
            by_addr: ArcSwap::default(),
            pruned_at: AtomicU64::new(0),
        }
    }
}

impl<B: super::OutboundBody> Pool<B> {
    /// The connection state of an endpoint (created on first use; replaced if the address is
    /// now bound to another identity).
    pub(crate) fn conns_of(&self, endpoint: &Endpoint) -> Arc<EndpointConns<B>> {
        if let Some(c) = self.by_addr.load().get(&endpoint.addr)
            && c.identity == endpoint.identity
        {
            return c.clone();
        }
        let fresh = Arc::new(EndpointConns::new(endpoint.addr, endpoint.identity.clone()));
        self.by_addr.rcu(|map| {
            let mut map = ConnsMap::clone(map);
            map.insert(endpoint.addr, fresh.clone());
            map
        });
        fresh
    }

    /// In-flight requests of an endpoint this client has connection state for (0 otherwise).
    pub(crate) fn load_of(&self, endpoint: &Endpoint) -> usize {
        self.by_addr
            .load()
            .get(&endpoint.addr)
            .filter(|c| c.identity == endpoint.identity)
            .map_or(0, |c| c.load())
    }
}

impl<B> Pool<B> {
    /// How many endpoints the pool keeps connection state for.
    pub(crate) fn len(&self) -> usize {
        self.by_addr.load().len()
    }

    /// Drops the connections to endpoints that are no longer in the policy (or are bound to
    /// another identity now, or its identity is revoked), once per policy version: one atomic
    /// load per request otherwise.
    pub(crate) fn prune(&self, policy: &PolicyState) {
        // Not `>=`: versions only grow, but a request holding an older state may prune against
        // it; what it drops is reconnected on demand.
        let seen = self.pruned_at.load(Ordering::Relaxed);
        if seen == policy.version
            || self
                .pruned_at
                .compare_exchange(seen, policy.version, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        // During a control restart the endpoint lists may be partial; PolicyState keeps the
        // previous endpoints then, so nothing still serving is dropped here.
        self.by_addr.rcu(|map| {
            map.iter()
                .filter(|(addr, c)| policy.lists(**addr, &c.identity))
                .map(|(addr, c)| (*addr, c.clone()))
                .collect::<ConnsMap<B>>()
        });
    }
}
