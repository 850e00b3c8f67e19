//! Version numbers of published states. They are the [`StateStore`]'s: the hub takes them in
//! blocks ([`BLOCK`]) from [`StateStore::reserve_versions`], so that a restarted control (or
//! another control on the same store) never reuses a number, without a store write per publish.
//! A store shared by several controls (etcd) gives its revision instead
//! ([`StateStore::shared_version`]): every control publishes the same number for the same
//! state, and a restarted one never goes below what it published before.

use std::sync::Arc;

use crate::traits::{StateStore, StoreError};

/// How many versions one reservation takes: one store write per this many publishes, and at
/// most this many numbers skipped by a restart.
pub const BLOCK: u64 = 1024;

/// Hands out the hub's version numbers.
pub struct Versions {
    store: Option<Arc<dyn StateStore>>,
    next: u64,
    /// The end of the reserved block (exclusive).
    end: u64,
}

impl std::fmt::Debug for Versions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Versions")
            .field("store", &self.store.as_ref().map(|s| s.name().to_owned()))
            .field("next", &self.next)
            .field("end", &self.end)
            .finish()
    }
}

impl Versions {
    /// Counted in this process from 1: for a hub whose states do not outlive the process (tests,
    /// tools).
    pub fn local() -> Self {
        Self {
            store: None,
            next: 1,
            end: u64::MAX,
        }
    }

    /// Reserved from `store`, the first block now: a store that cannot hand out versions stops
    /// the start rather than number states twice.
    pub fn from_store(store: Arc<dyn StateStore>) -> Result<Self, StoreError> {
        if store.shared_version().is_some() {
            return Ok(Self {
                next: 1,
                end: u64::MAX,
                store: Some(store),
            });
        }
        let block = store.reserve_versions(BLOCK)?;
        Ok(Self {
            next: block.start.max(1),
            end: block.end,
            store: Some(store),
        })
    }

    /// The next number. When the block is used up, the next one is reserved; if the store
    /// fails, numbering goes on past the block (publishing matters more than the numbers
    /// across a restart) and the next publish tries again.
    pub fn take(&mut self) -> u64 {
        // A shared store's revision: the same state is the same number on every control; a
        // publish between two revisions (a root retiring) numbers on from the last.
        if let Some(floor) = self.store.as_ref().and_then(|s| s.shared_version()) {
            let version = self.next.max(floor).max(1);
            self.next = version + 1;
            return version;
        }
        if self.next >= self.end
            && let Some(store) = &self.store
        {
            match store.reserve_versions(BLOCK) {
                Ok(block) => {
                    self.next = self.next.max(block.start);
                    self.end = block.end.max(self.next);
                }
                Err(e) => {
                    tracing::error!(error = %e, store = store.name(), "cannot reserve version numbers; counting on without a reservation (a restart may reuse some)");
                }
            }
        }
        let version = self.next;
        self.next += 1;
        version
    }
}
