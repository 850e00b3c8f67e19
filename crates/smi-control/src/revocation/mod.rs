//! Revocation: the deny list, and the use counts of join tokens, both kept by the
//! [`StateStore`]. In the state directory ([`crate::files::StateDir`]) they are two files, both
//! 0600, written in one step (a temporary file renamed into place) and read strictly, like the
//! CA's ([`crate::ca::CaStore`]):
//!
//! - `revoked.json`, written by `smictl revoke`: revoked identities and revoked join tokens.
//!   ```json
//!   {
//!     "identities": [{"identity": "shop/web", "revoked_at_unix": 1700000000, "reason": "key leaked"}],
//!     "tokens": [{"jti": "5f0c3a9d1e2b4c6a7f", "revoked_at_unix": 1700000000}]
//!   }
//!   ```
//! - `token-uses/<jti>.json` (the directory 0700), written by the control: how many
//!   certificates one join token bought, `{"used": 1, "expires_unix": 1700000600}`. A token's
//!   entry is removed once it has expired (it cannot enroll then anyway), so the directory holds
//!   the live tokens only; an enrollment touches its own token's file only.
//!
//! The control reloads the deny list when the state changes, and checks its revision again
//! before it issues a certificate (one `stat`), so a revocation applies to the next
//! enrollment or renewal. It publishes the revoked identities with the trust bundle on every
//! Watch stream: each workload refuses their requests (`Denied::Revoked`), closes their
//! connections, and sends them nothing. A deny list that cannot be read stops the control at
//! start; later, the last good one stays in force (and the error is logged).

mod denylist;
mod uses;

pub use crate::files::USES_DIR;
pub use denylist::{
    DenyList, FILE, MAX_REASON_CHARS, RevokedIdentity, RevokedToken, check_jti, check_reason,
};

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use smi_core::{ServiceAccount, SpiffeId};

use crate::ca::{CaError, unix_now};
use crate::enroll::{Grant, Refusal};
use crate::files::StateDir;
use crate::hub::{Hub, uri_order};
use crate::traits::{Revision, StateStore, StoreError};
use uses::Spending;

/// Why a certificate was not issued after authentication.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error(transparent)]
    Refused(Refusal),
    #[error(transparent)]
    Ca(CaError),
    #[error("recording the join token's use: {0}")]
    Ledger(StoreError),
}

/// The deny list as the control consults it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Index {
    /// Revoked identity -> its reason.
    identities: HashMap<ServiceAccount, Option<String>>,
    tokens: HashMap<String, Option<String>>,
}

impl Index {
    fn build(list: &DenyList) -> Self {
        let mut index = Index::default();
        for e in &list.identities {
            // `DenyList::load` validated every entry.
            if let Ok(account) = e.identity.parse() {
                index.identities.insert(account, e.reason.clone());
            }
        }
        for e in &list.tokens {
            index.tokens.insert(e.jti.clone(), e.reason.clone());
        }
        index
    }

    /// The revoked identities as SPIFFE IDs, in the order workloads are sent them.
    fn spiffe_ids(&self, trust_domain: &str) -> Vec<SpiffeId> {
        let mut ids: Vec<SpiffeId> = self
            .identities
            .keys()
            .map(|a| a.spiffe_id(trust_domain))
            .collect();
        ids.sort_unstable_by(uri_order);
        ids
    }
}

#[derive(Debug)]
struct Loaded {
    revision: Option<Revision>,
    index: Arc<Index>,
}

/// The control's revocation state: the deny list in force, and the spending of join tokens.
pub struct Revocations {
    store: Arc<dyn StateStore>,
    trust_domain: String,
    hub: Arc<Hub>,
    loaded: Mutex<Loaded>,
    spending: Spending,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("store", &self.store.name())
            .field("trust_domain", &self.trust_domain)
            .field("loaded", &self.loaded)
            .finish_non_exhaustive()
    }
}

impl Revocations {
    /// [`Revocations::new`] over the state directory `state_dir`.
    pub fn open(
        state_dir: &Path,
        trust_domain: &str,
        hub: Arc<Hub>,
    ) -> Result<Arc<Self>, StoreError> {
        Self::new(Arc::new(StateDir::new(state_dir)), trust_domain, hub)
    }

    /// Loads the deny list of `store` (an unreadable one is an error) and publishes its
    /// identities on `hub`.
    pub fn new(
        store: Arc<dyn StateStore>,
        trust_domain: &str,
        hub: Arc<Hub>,
    ) -> Result<Arc<Self>, StoreError> {
        let revision = store.deny_list_revision();
        let index = Index::build(&store.deny_list()?);
        let revoked = index.spiffe_ids(trust_domain);
        if !revoked.is_empty() {
            tracing::info!(
                identities = revoked.len(),
                tokens = index.tokens.len(),
                store = store.name(),
                "deny list loaded"
            );
            hub.set_revoked(revoked);
        }
        Ok(Arc::new(Self {
            store,
            trust_domain: trust_domain.to_owned(),
            hub,
            loaded: Mutex::new(Loaded {
                revision,
                index: Arc::new(index),
            }),
            spending: Spending::default(),
        }))
    }

    /// Reloads the deny list if it changed; publishes the identities if they changed.
    /// A list that cannot be read leaves the last good one in force (and is logged).
    pub fn reload(&self) {
        self.current();
    }
    /// Refuses a caller of Watch, Ack or Register whose identity is revoked: its certificate
    /// still verifies until it expires, but it gets no more policy and registers nothing.
    pub fn check_caller(&self, identity: &ServiceAccount) -> Result<(), Refusal> {
        match self.current().identities.get(identity) {
            Some(reason) => Err(Refusal::Revoked {
                identity: identity.to_string(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Refuses a grant whose identity or join token is revoked.
    pub fn admit(&self, grant: &Grant) -> Result<(), Refusal> {
        let index = self.current();
        if let Some(reason) = index.identities.get(&grant.identity) {
            return Err(Refusal::Revoked {
                identity: grant.identity.to_string(),
                reason: reason.clone(),
            });
        }
        if let Some(token) = &grant.token
            && let Some(reason) = index.tokens.get(&token.jti)
        {
            return Err(Refusal::TokenRevoked {
                jti: token.jti.clone(),
                reason: reason.clone(),
            });
        }
        Ok(())
    }

    /// Calls `issue` for an admitted grant; for a join token, only if it has a use left, and
    /// the use is counted (on disk) when a certificate is issued.
    pub fn issue<T>(
        &self,
        grant: &Grant,
        issue: impl FnOnce() -> Result<T, CaError>,
    ) -> Result<T, IssueError> {
        match &grant.token {
            Some(token) => self.spending.spend(&*self.store, token, issue),
            None => issue().map_err(IssueError::Ca),
        }
    }

    /// How many certificates the join token `jti` has bought (0 when unknown or expired; for
    /// tests and operators).
    pub fn token_uses(&self, jti: &str) -> Result<u32, StoreError> {
        let now = unix_now();
        Ok(self
            .store
            .token_uses(jti)?
            .filter(|e| e.expires_unix > now)
            .map_or(0, |e| e.used))
    }

    /// How many join tokens the use ledger holds.
    pub fn tokens_counted(&self) -> Result<usize, StoreError> {
        self.store.tokens_counted()
    }

    /// The deny list in force, reloaded first if it changed since it was read.
    fn current(&self) -> Arc<Index> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.store.deny_list_revision();
        if now == loaded.revision {
            return loaded.index.clone();
        }
        // Seen, whatever it holds: a broken list is reported once, and its fix is a new one.
        loaded.revision = now;
        match self.store.deny_list() {
            Ok(list) => {
                let index = Index::build(&list);
                if index != *loaded.index {
                    let revoked = index.spiffe_ids(&self.trust_domain);
                    tracing::info!(
                        identities = revoked.len(),
                        tokens = index.tokens.len(),
                        store = self.store.name(),
                        "deny list reloaded"
                    );
                    if revoked != loaded.index.spiffe_ids(&self.trust_domain) {
                        self.hub.set_revoked(revoked);
                    }
                    loaded.index = Arc::new(index);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "the deny list cannot be read; the last good one stays in force");
            }
        }
        loaded.index.clone()
    }
}

#[cfg(test)]
mod tests;
