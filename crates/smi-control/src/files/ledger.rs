//! `token-uses/<jti>.json`: how many certificates each join token has bought, so that a token
//! buys at most its `uses` (one by default), across restarts of the control. One small file per
//! token, so that an enrollment reads and writes its own token's count only, whatever the number
//! of live tokens; the files of expired tokens are removed (at most a minute late).

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::state_files::{invalid, read_secret, write_atomic};
use crate::ca::unix_now;
use crate::enroll::TokenUse;
use crate::revocation::check_jti;
use crate::traits::{StoreError, TokenUses};

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

/// The use counts of join tokens, one file each.
#[derive(Debug)]
pub(super) struct Ledger {
    dir: PathBuf,
    /// When expired entries were last removed (`None`: not yet).
    pruned: Mutex<Option<Instant>>,
}

impl Ledger {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join(DIR),
            pruned: Mutex::new(None),
        }
    }

    pub fn uses(&self, jti: &str) -> Result<Option<TokenUses>, StoreError> {
        Ok(read(&self.path(jti)?)?.map(|e| TokenUses {
            used: e.used,
            expires_unix: e.expires_unix,
            revision: None,
        }))
    }

    /// Writes the count (synced before it returns), and now and then removes expired entries.
    pub fn record(&self, token: &TokenUse, used: u32) -> Result<(), StoreError> {
        let path = self.path(&token.jti)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| invalid(&self.dir, e.to_string()))?;
        let entry = Entry {
            used,
            expires_unix: token.expires_unix,
        };
        let json = serde_json::to_vec(&entry).map_err(|e| invalid(&path, e.to_string()))?;
        write_atomic(&path, &json, 0o600)?;
        self.prune_now_and_then();
        Ok(())
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

    /// Removes the entries of expired tokens (and leaves alone what it cannot read: the next
    /// spend of that token reports it).
    fn prune(&self) {
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
