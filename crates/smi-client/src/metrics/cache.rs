//! Each thread's map from label sets to series, so that recording a request takes no lock
//! shared between cores and allocates nothing: the registry's lock is taken only the first time
//! a thread sees a label set (and when rendering or reporting).
//!
//! The registry tells series apart by the labels' contents. This cache, on the request path,
//! tells them apart by the labels' identity instead: shared names by their address and length
//! (they are made once per policy version, and the cache holds them, so an address cannot be
//! reused while it is cached), a peer by the hash its names got once per connection (compared
//! by contents, so that every connection of a pod is one entry). Hashing a few words with
//! hashbrown's default hasher (foldhash) instead of every label's text is most of what keeps a
//! hit within its budget. Names made per request (error paths' formatted names) miss every
//! time: they take the registry's lock.
//!
//! The map is bounded ([`CACHE_CAP`]): when full, entries of dropped registries go, and if that
//! is not enough, everything goes (the next requests miss once each). Entries of a dropped
//! registry stay until this thread misses again.

use std::cell::RefCell;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use hashbrown::Equivalent;

use super::registry::Registry;
use super::schema::{Observation, PeerNames, StringValue};
use super::series::{Series, SeriesKey, grpc_code};

/// Series one thread keeps handy (the registry's cap is per registry; a process has one).
pub(crate) const CACHE_CAP: usize = 8_192;

/// A cached label set: the series key (holding the names, so their addresses stay theirs).
struct Cached {
    registry: u64,
    key: SeriesKey,
}

/// A lookup: an observation's labels, borrowed.
struct Lookup<'a> {
    registry: u64,
    o: &'a Observation,
    grpc: Option<u8>,
}

type Map = hashbrown::HashMap<Cached, Arc<Series>>;

thread_local! {
    static CACHE: RefCell<Map> = RefCell::new(Map::default());
}

/// A name's identity in one word (address and length; a collision only costs a comparison).
fn text_identity(value: &StringValue) -> u64 {
    let (address, len) = value.identity();
    (address as u64) ^ (len as u64).rotate_right(16)
}

fn peer_hash(peer: &Option<Arc<PeerNames>>) -> u64 {
    peer.as_deref().map_or(0, PeerNames::content_hash)
}

fn same_peer(a: &Option<Arc<PeerNames>>, b: &Option<Arc<PeerNames>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
        (None, None) => true,
        _ => false,
    }
}

/// One hash for a cached key and a lookup of the same labels: the same five words, in order
/// (few writes: each costs the hasher a multiplication).
#[allow(clippy::too_many_arguments)]
#[inline]
fn hash_parts<H: Hasher>(
    state: &mut H,
    registry: u64,
    direction: u8,
    protocol: u8,
    status: u16,
    grpc: Option<u8>,
    peer: &Option<Arc<PeerNames>>,
    texts: [&StringValue; 3],
) {
    let small = registry << 32
        | u64::from(direction) << 28
        | u64::from(protocol) << 24
        | u64::from(grpc.unwrap_or(0xff)) << 16
        | u64::from(status);
    state.write_u64(small ^ peer_hash(peer).rotate_left(7));
    for text in texts {
        state.write_u64(text_identity(text));
    }
}

impl Hash for Cached {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let k = &self.key;
        hash_parts(
            state,
            self.registry,
            k.direction as u8,
            k.protocol as u8,
            k.status,
            k.grpc_status,
            &k.peer,
            [&k.service, &k.backend, &k.route],
        );
    }
}

impl Hash for Lookup<'_> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (o, l) = (self.o, &self.o.labels);
        hash_parts(
            state,
            self.registry,
            o.direction as u8,
            l.protocol as u8,
            o.status,
            self.grpc,
            &l.peer,
            [&l.service, &l.backend, &l.route],
        );
    }
}

impl PartialEq for Cached {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&self.key, &other.key);
        self.registry == other.registry
            && a.direction == b.direction
            && a.protocol == b.protocol
            && a.status == b.status
            && a.grpc_status == b.grpc_status
            && same_peer(&a.peer, &b.peer)
            && a.service.same_text(&b.service)
            && a.backend.same_text(&b.backend)
            && a.route.same_text(&b.route)
    }
}

impl Eq for Cached {}

impl Equivalent<Cached> for Lookup<'_> {
    #[inline]
    fn equivalent(&self, cached: &Cached) -> bool {
        let (o, l, k) = (self.o, &self.o.labels, &cached.key);
        self.registry == cached.registry
            && o.direction == k.direction
            && l.protocol == k.protocol
            && o.status == k.status
            && self.grpc == k.grpc_status
            && same_peer(&l.peer, &k.peer)
            && l.service.same_text(&k.service)
            && l.backend.same_text(&k.backend)
            && l.route.same_text(&k.route)
    }
}

/// Runs `f` on the series of `o` in `registry`.
pub(crate) fn with_series(registry: &Registry, o: &Observation, f: impl FnOnce(&Series)) {
    let lookup = Lookup {
        registry: registry.id(),
        o,
        grpc: grpc_code(o.grpc_status),
    };
    let mut f = Some(f);
    let mut run = |series: &Series| {
        if let Some(f) = f.take() {
            f(series);
        }
    };
    let cached = CACHE.try_with(|cache| {
        // Never re-entered (recording calls nothing that records); if it were, fall through.
        let Ok(mut cache) = cache.try_borrow_mut() else {
            return false;
        };
        if let Some(series) = cache.get(&lookup) {
            run(series);
            return true;
        }
        let key = SeriesKey::of(o);
        let series = registry.series_for(&key);
        run(&series);
        if cache.len() >= CACHE_CAP {
            cache.retain(|_, s| s.alive.load(Relaxed));
            if cache.len() >= CACHE_CAP / 2 {
                cache.clear();
            }
        }
        cache.insert(
            Cached {
                registry: lookup.registry,
                key,
            },
            series,
        );
        true
    });
    // No cache (the thread is exiting, or re-entered): the registry's lock, once.
    if !matches!(cached, Ok(true)) {
        run(&registry.series_for(&SeriesKey::of(o)));
    }
}
