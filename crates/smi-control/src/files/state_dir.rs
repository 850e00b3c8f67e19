//! [`StateDir`]: the state directory as a [`StateStore`]. The layout is the one the control has
//! always kept (and `smictl` writes beside it):
//!
//! - `ca.json`, `bundle.pem`, `token.key`: the CA and the token key ([`CaStore`]);
//! - `revoked.json`: the deny list ([`DenyList`]);
//! - `token-uses/<jti>.json`: the token-use ledger;
//! - `versions.json`: the version numbers' high-water mark.
//!
//! Every file is read and written as [`super::state_files`] says.

use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::ledger::{DIR as USES_DIR, Ledger};
use super::versions::VersionFile;
use super::watch::watch_dir_except;
use crate::ca::{Authority, CaStore};
use crate::enroll::TokenUse;
use crate::revocation::DenyList;
use crate::traits::{
    Changed, Revision, SourceError, StateStore, StoreError, TokenUses, WatchGuard,
};

#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    name: String,
    ca: CaStore,
    ledger: Ledger,
    versions: VersionFile,
}

impl StateDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Self {
            name: dir.display().to_string(),
            ca: CaStore::new(&dir),
            ledger: Ledger::new(&dir),
            versions: VersionFile::new(&dir),
            dir,
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The CA part of the directory (what `smictl ca rotate` and `smictl token create` use).
    pub fn ca(&self) -> &CaStore {
        &self.ca
    }
}

impl StateStore for StateDir {
    fn name(&self) -> &str {
        &self.name
    }

    fn authority(&self, trust_domain: &str) -> Result<Authority, StoreError> {
        self.ca.open_or_init(trust_domain)
    }

    fn next_retirement(&self) -> Option<SystemTime> {
        self.ca.next_retirement()
    }

    fn token_key(&self) -> Result<Vec<u8>, StoreError> {
        self.ca.token_key()
    }

    /// The file's inode, modification time and length: `smictl revoke` replaces it by rename,
    /// so every version is a new inode.
    fn deny_list_revision(&self) -> Option<Revision> {
        std::fs::symlink_metadata(DenyList::path(&self.dir))
            .ok()
            .map(|m| {
                Revision([
                    i64::try_from(m.ino()).unwrap_or(i64::MAX),
                    m.mtime(),
                    m.mtime_nsec(),
                    i64::try_from(m.len()).unwrap_or(i64::MAX),
                ])
            })
    }

    fn deny_list(&self) -> Result<DenyList, StoreError> {
        DenyList::load(&self.dir)
    }

    fn token_uses(&self, jti: &str) -> Result<Option<TokenUses>, StoreError> {
        self.ledger.uses(jti)
    }

    /// `read` is not needed: one control per directory, one use of a token at a time.
    fn record_token_use(
        &self,
        token: &TokenUse,
        used: u32,
        _read: Option<&TokenUses>,
    ) -> Result<(), StoreError> {
        self.ledger.record(token, used)
    }

    fn tokens_counted(&self) -> Result<usize, StoreError> {
        self.ledger.len()
    }

    fn reserve_versions(&self, count: u64) -> Result<Range<u64>, StoreError> {
        self.ca.create_dir()?;
        self.versions.reserve(count)
    }

    /// The directory, watched like the policy directory, except for the store's own writes
    /// (the ledger, the versions): writing them is no reason to reload.
    fn watch(&self, changed: Changed) -> Result<WatchGuard, SourceError> {
        let dirs: Vec<PathBuf> = [
            Some(self.dir.clone()),
            std::fs::canonicalize(&self.dir).ok(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let ours = move |path: &Path| {
            dirs.iter()
                .filter_map(|d| path.strip_prefix(d).ok())
                .any(|relative| relative.starts_with(USES_DIR) || VersionFile::is_ours(relative))
        };
        watch_dir_except(&self.dir, ours, move || changed())
            .map(WatchGuard::new)
            .map_err(|e| SourceError(e.to_string()))
    }
}

#[cfg(test)]
mod tests;
