//! `token-uses/<jti>.json`: how many certificates each join token has bought, so that a token
//! buys at most its `uses` (one by default), across restarts of the control. One small file per
//! token, so that an enrollment reads and writes its own token's count only, whatever the number
//! of live tokens; the files of expired tokens are removed (at most a minute late).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::IssueError;
use super::denylist::check_jti;
use crate::ca::{CaError, StoreError, invalid, read_secret, unix_now, write_atomic};
use crate::enroll::{Refusal, TokenUse};

/// The ledger's directory in the state directory.
pub const DIR: &str = "token-uses";

/// How often expired entries are looked for.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// How long after its expiry a token's entry is kept: an enrollment that verified the token
/// just before it expired still finds its count.
const PRUNE_GRACE_SECS: u64 = 60;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    used: u32,
    /// When the token expires: after that it cannot be used anyway, and its entry goes.
    expires_unix: u64,
}

/// The use counts of join tokens. One spend at a time per token (a lock of that token around
/// read, issue, write), so two enrollments racing with one single-use token get one
/// certificate, while enrollments with different tokens sign and write in parallel.
#[derive(Debug)]
pub(crate) struct UseLedger {
    dir: PathBuf,
    /// The lock of each token being spent (entries go when the prune finds them unused).
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// When expired entries were last removed (`None`: not yet).
    pruned: Mutex<Option<Instant>>,
}

impl UseLedger {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join(DIR),
            locks: Mutex::default(),
            pruned: Mutex::new(None),
        }
    }

    /// The lock of one token (held only for the map lookup here).
    fn lock_of(&self, jti: &str) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(jti.to_owned()).or_default().clone()
    }

    /// Calls `issue` if `token` has a use left, and counts the use when it succeeds; the count
    /// is on disk before the certificate is handed out (a failed write hands out nothing).
    pub fn spend<T>(
        &self,
        token: &TokenUse,
        issue: impl FnOnce() -> Result<T, CaError>,
    ) -> Result<T, IssueError> {
        let path = self.path(&token.jti).map_err(IssueError::Ledger)?;
        // Poisoning leaves nothing half-done here: the state is the files, each written in one
        // step.
        let lock = self.lock_of(&token.jti);
        let _spending = lock.lock().unwrap_or_else(|e| e.into_inner());
        // Checked again under the lock: a token that expired since it was verified may already
        // have lost its entry to a prune, and would read as unused.
        let now = unix_now();
        if token.expires_unix <= now {
            return Err(IssueError::Refused(Refusal::Expired(
                now - token.expires_unix,
            )));
        }
        let used = read(&path)
            .map_err(IssueError::Ledger)?
            .map_or(0, |e| e.used);
        if used >= token.uses {
            return Err(IssueError::Refused(Refusal::TokenUsedUp {
                jti: token.jti.clone(),
                used,
            }));
        }
        let issued = issue().map_err(IssueError::Ca)?;
        let entry = Entry {
            used: used + 1,
            expires_unix: token.expires_unix,
        };
        self.write(&path, &entry).map_err(IssueError::Ledger)?;
        self.prune_now_and_then();
        Ok(issued)
    }

    /// How many certificates the token `jti` has bought (0 when unknown or expired).
    pub fn used(&self, jti: &str) -> Result<u32, StoreError> {
        let now = unix_now();
        Ok(read(&self.path(jti)?)?
            .filter(|e| e.expires_unix > now)
            .map_or(0, |e| e.used))
    }

    /// How many tokens the ledger holds.
    pub fn len(&self) -> Result<usize, StoreError> {
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => Ok(entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(invalid(&self.dir, e.to_string())),
        }
    }

    /// `<dir>/<jti>.json`; the id is checked first, so it cannot name another path.
    fn path(&self, jti: &str) -> Result<PathBuf, StoreError> {
        check_jti(jti).map_err(|e| invalid(&self.dir, e))?;
        Ok(self.dir.join(format!("{jti}.json")))
    }

    fn write(&self, path: &Path, entry: &Entry) -> Result<(), StoreError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| invalid(&self.dir, e.to_string()))?;
        let json = serde_json::to_vec(entry).map_err(|e| invalid(path, e.to_string()))?;
        write_atomic(path, &json, 0o600)
    }

    /// Removes the entries of expired tokens (and leaves alone what it cannot read: the next
    /// spend of that token reports it).
    fn prune_now_and_then(&self) {
        {
            let mut pruned = self.pruned.lock().unwrap_or_else(|e| e.into_inner());
            if pruned.is_some_and(|at| at.elapsed() < PRUNE_EVERY) {
                return;
            }
            *pruned = Some(Instant::now());
        }
        self.prune();
    }

    fn prune(&self) {
        // Locks no spend holds (only the map has them) are forgotten.
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, lock| Arc::strong_count(lock) > 1);
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let now = unix_now();
        for path in entries.filter_map(Result::ok).map(|e| e.path()) {
            if path.extension().is_some_and(|x| x == "json")
                && read(&path).is_ok_and(|e| {
                    e.is_some_and(|e| e.expires_unix.saturating_add(PRUNE_GRACE_SECS) <= now)
                })
            {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

fn read(path: &Path) -> Result<Option<Entry>, StoreError> {
    let Some(text) = read_secret(path)? else {
        return Ok(None);
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        invalid(
            path,
            format!(
                "{e}; this join token cannot enroll until it is fixed (removing the file forgets its count: a used token could enroll again until it expires)"
            ),
        )
    })
}
