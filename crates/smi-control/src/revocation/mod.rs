//! Revocation: the deny list the control keeps in its state directory, and the use counts of
//! join tokens. Two files, both 0600, written in one step (a temporary file renamed into place)
//! and read strictly, like the CA's ([`crate::ca::CaStore`]):
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
//! The control reloads the deny list when the state directory changes, and checks the file
//! again before it issues a certificate (one `stat`), so a revocation applies to the next
//! enrollment or renewal. It publishes the revoked identities with the trust bundle on every
//! Watch stream: each workload refuses their requests (`Denied::Revoked`), closes their
//! connections, and sends them nothing. A deny list that cannot be read stops the control at
//! start; later, the last good one stays in force (and the error is logged).

mod denylist;
mod uses;

pub use denylist::{
    DenyList, FILE, MAX_REASON_CHARS, RevokedIdentity, RevokedToken, check_jti, check_reason,
};
pub use uses::DIR as USES_DIR;

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use smi_core::ServiceAccount;

use crate::ca::{CaError, StoreError};
use crate::distribute::Hub;
use crate::enroll::{Grant, Refusal};
use uses::UseLedger;

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

    /// The revoked identities as SPIFFE IDs, sorted: what workloads are sent.
    fn spiffe_ids(&self, trust_domain: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .identities
            .keys()
            .map(|a| a.spiffe_id(trust_domain).to_string())
            .collect();
        ids.sort_unstable();
        ids
    }
}

/// What identifies one version of the file on disk (it is replaced by rename, so a new inode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    mtime: i64,
    mtime_nsec: i64,
    len: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    std::fs::symlink_metadata(path).ok().map(|m| Stamp {
        ino: m.ino(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
        len: m.len(),
    })
}

#[derive(Debug)]
struct Loaded {
    stamp: Option<Stamp>,
    index: Arc<Index>,
}

/// The control's revocation state: the deny list in force, and the token use ledger.
#[derive(Debug)]
pub struct Revocations {
    state_dir: PathBuf,
    trust_domain: String,
    hub: Arc<Hub>,
    loaded: Mutex<Loaded>,
    uses: UseLedger,
}

impl Revocations {
    /// Loads the deny list of `state_dir` (an unreadable one is an error) and publishes its
    /// identities on `hub`.
    pub fn open(
        state_dir: &Path,
        trust_domain: &str,
        hub: Arc<Hub>,
    ) -> Result<Arc<Self>, StoreError> {
        let path = DenyList::path(state_dir);
        let stamp = stamp(&path);
        let index = Index::build(&DenyList::load(state_dir)?);
        let revoked = index.spiffe_ids(trust_domain);
        if !revoked.is_empty() {
            tracing::info!(identities = revoked.len(), tokens = index.tokens.len(), path = %path.display(), "deny list loaded");
            hub.set_revoked(revoked);
        }
        Ok(Arc::new(Self {
            state_dir: state_dir.to_owned(),
            trust_domain: trust_domain.to_owned(),
            hub,
            loaded: Mutex::new(Loaded {
                stamp,
                index: Arc::new(index),
            }),
            uses: UseLedger::new(state_dir),
        }))
    }

    /// Reloads the deny list if the file changed; publishes the identities if they changed.
    /// A file that cannot be read leaves the last good list in force (and is logged).
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
            Some(token) => self.uses.spend(token, issue),
            None => issue().map_err(IssueError::Ca),
        }
    }

    /// How many certificates the join token `jti` has bought (for tests and operators).
    pub fn token_uses(&self, jti: &str) -> Result<u32, StoreError> {
        self.uses.used(jti)
    }

    /// How many join tokens the use ledger holds.
    pub fn tokens_counted(&self) -> Result<usize, StoreError> {
        self.uses.len()
    }

    /// The deny list in force, reloaded first if the file changed since it was read.
    fn current(&self) -> Arc<Index> {
        let path = DenyList::path(&self.state_dir);
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let now = stamp(&path);
        if now == loaded.stamp {
            return loaded.index.clone();
        }
        // Seen, whatever it holds: a broken file is reported once, and its fix is a new one.
        loaded.stamp = now;
        match DenyList::load(&self.state_dir) {
            Ok(list) => {
                let index = Index::build(&list);
                if index != *loaded.index {
                    let revoked = index.spiffe_ids(&self.trust_domain);
                    tracing::info!(identities = revoked.len(), tokens = index.tokens.len(), path = %path.display(), "deny list reloaded");
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
