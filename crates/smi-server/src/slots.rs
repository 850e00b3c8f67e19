//! Connection slots of one listener: at most `max_connections_per_peer` open connections per
//! peer SPIFFE ID and `max_connections` in all. A connection takes its slot right after the
//! handshake and holds it (a [`Slot`] in its stream) until the stream is dropped, wherever it
//! went (hyper, tonic, axum, a TCP handler, an application that took an upgrade).
//!
//! One mutex per listener, taken twice per connection and never per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use smi_core::SpiffeId;

/// How often a refusal is logged, per peer (and once more for the listener-wide limit).
const LOG_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct Slots {
    per_peer: usize,
    total: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    open: usize,
    peers: HashMap<SpiffeId, PeerSlots>,
    logged_full: Option<Instant>,
}

#[derive(Debug, Default)]
struct PeerSlots {
    open: usize,
    logged: Option<Instant>,
}

/// One open connection's place; released on drop.
pub(crate) struct Slot {
    slots: Arc<Slots>,
    peer: SpiffeId,
}

// === impl Slots ===

impl Slots {
    pub(crate) fn new(per_peer: usize, total: usize) -> Arc<Self> {
        Arc::new(Self {
            per_peer,
            total,
            state: Mutex::default(),
        })
    }

    /// A slot for a new connection of `peer`, or `None` (logged, rate-limited) when the peer
    /// or the listener is at its limit.
    pub(crate) fn take(self: &Arc<Self>, peer: &SpiffeId) -> Option<Slot> {
        let now = Instant::now();
        let mut state = self.lock();
        let state = &mut *state;
        if state.open >= self.total {
            if due(&mut state.logged_full, now) {
                tracing::info!(%peer, limit = self.total, "listener at its connection limit; closing new connections");
            }
            return None;
        }
        let slots = state.peers.entry(peer.clone()).or_default();
        if slots.open >= self.per_peer {
            if due(&mut slots.logged, now) {
                tracing::info!(%peer, limit = self.per_peer, "peer at its connection limit; closing its new connections");
            }
            if slots.open == 0 {
                // A limit of 0: nothing to release later, so keep no entry.
                state.peers.remove(peer);
            }
            return None;
        }
        slots.open += 1;
        state.open += 1;
        Some(Slot {
            slots: self.clone(),
            peer: peer.clone(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is two counters per entry, consistent after every statement: a panic
        // elsewhere while holding the lock cannot leave it half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn open(&self, peer: &SpiffeId) -> usize {
        self.lock().peers.get(peer).map_or(0, |p| p.open)
    }
}

fn due(last: &mut Option<Instant>, now: Instant) -> bool {
    if last.is_some_and(|last| now.duration_since(last) < LOG_EVERY) {
        return false;
    }
    *last = Some(now);
    true
}

// === impl Slot ===

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.slots.lock();
        state.open = state.open.saturating_sub(1);
        if let Some(slots) = state.peers.get_mut(&self.peer) {
            slots.open = slots.open.saturating_sub(1);
            if slots.open == 0 {
                state.peers.remove(&self.peer);
            }
        }
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("peer", &self.peer).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smi_core::ServiceAccount;

    fn id(name: &str) -> SpiffeId {
        ServiceAccount::new("ns", name).spiffe_id("cluster.local")
    }

    #[test]
    fn refuses_a_peer_over_its_limit_and_frees_the_slot_on_drop() {
        let slots = Slots::new(2, 10);
        let (a, b) = (id("a"), id("b"));
        let first = slots.take(&a).unwrap();
        let _second = slots.take(&a).unwrap();
        assert!(slots.take(&a).is_none());
        assert!(slots.take(&b).is_some(), "another peer has its own slots");
        drop(first);
        assert_eq!(slots.open(&a), 1);
        assert!(slots.take(&a).is_some());
    }

    #[test]
    fn refuses_everyone_at_the_listener_limit() {
        let slots = Slots::new(5, 2);
        let _a = slots.take(&id("a")).unwrap();
        let b = slots.take(&id("b")).unwrap();
        assert!(slots.take(&id("c")).is_none());
        drop(b);
        assert!(slots.take(&id("c")).is_some());
    }

    #[test]
    fn forgets_a_peer_whose_last_connection_closed() {
        let slots = Slots::new(0, 10);
        assert!(slots.take(&id("a")).is_none());
        let slots = Slots::new(1, 10);
        drop(slots.take(&id("a")).unwrap());
        assert!(slots.lock().peers.is_empty());
        assert_eq!(slots.lock().open, 0);
    }
}
