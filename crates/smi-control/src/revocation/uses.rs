//! Spending join tokens: a token buys at most its `uses` certificates. One spend at a time per
//! token (a lock of that token around read, issue, record), so two enrollments racing with one
//! single-use token get one certificate, while enrollments with different tokens sign and
//! record in parallel. The counts themselves are the [`StateStore`]'s ledger.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::IssueError;
use crate::ca::{CaError, unix_now};
use crate::enroll::{Refusal, TokenUse};
use crate::traits::StateStore;

/// The locks of the tokens being spent.
#[derive(Debug, Default)]
pub(crate) struct Spending {
    /// An entry lives while a spend of its token holds it.
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl Spending {
    /// Calls `issue` if `token` has a use left, and counts the use when it succeeds; the count
    /// is recorded before the certificate is handed out (a failed record hands out nothing).
    pub fn spend<T>(
        &self,
        store: &dyn StateStore,
        token: &TokenUse,
        issue: impl FnOnce() -> Result<T, CaError>,
    ) -> Result<T, IssueError> {
        let lock = self.lock_of(&token.jti);
        let spent = {
            // Poisoning leaves nothing half-done here: the state is the store's, each record
            // written in one step.
            let _spending = lock.lock().unwrap_or_else(|e| e.into_inner());
            spend_locked(store, token, issue)
        };
        drop(lock);
        self.forget_unless_held(&token.jti);
        spent
    }

    /// The lock of one token (the map is held only for the lookup).
    fn lock_of(&self, jti: &str) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(jti.to_owned()).or_default().clone()
    }

    /// Drops the token's lock when no other spend holds it, so the map holds live spends only.
    fn forget_unless_held(&self, jti: &str) {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        if locks.get(jti).is_some_and(|l| Arc::strong_count(l) == 1) {
            locks.remove(jti);
        }
    }
}

fn spend_locked<T>(
    store: &dyn StateStore,
    token: &TokenUse,
    issue: impl FnOnce() -> Result<T, CaError>,
) -> Result<T, IssueError> {
    // Checked again under the lock: a token that expired since it was verified may already
    // have lost its entry to a prune, and would read as unused.
    let now = unix_now();
    if token.expires_unix <= now {
        return Err(IssueError::Refused(Refusal::Expired(
            now - token.expires_unix,
        )));
    }
    let read = store.token_uses(&token.jti).map_err(IssueError::Ledger)?;
    let used = read.as_ref().map_or(0, |e| e.used);
    if used >= token.uses {
        return Err(IssueError::Refused(Refusal::TokenUsedUp {
            jti: token.jti.clone(),
            used,
        }));
    }
    let issued = issue().map_err(IssueError::Ca)?;
    store
        .record_token_use(token, used + 1, read.as_ref())
        .map_err(IssueError::Ledger)?;
    Ok(issued)
}
