//! [`StateStore`]: what the control keeps between runs. Files in the state directory today
//! ([`crate::files::StateDir`]); etcd next.

use std::ops::Range;
use std::path::PathBuf;
use std::time::SystemTime;

use super::{Changed, SourceError, WatchGuard};
use crate::ca::Authority;
use crate::enroll::TokenUse;
use crate::revocation::DenyList;

/// The control's durable state: the CA, the join-token key, the deny list, the token-use
/// ledger and the version numbers.
///
/// The contract:
/// - Secrets stay secret: the CA's key and the token key are readable by the control only
///   (files: mode 0600, read with `O_NOFOLLOW`, written through `O_EXCL` temporary files).
/// - What exists is never replaced silently: a CA or token key that cannot be read is an error
///   naming it (a new one would change the CA, or invalidate every join token issued). Only a
///   store that has none makes one.
/// - Writes are whole: a reader never sees half an item.
/// - **Versions are the store's.** [`reserve_versions`](Self::reserve_versions) hands out
///   ranges above every number it handed out before, to this process, to an earlier run, and
///   (for a shared store) to other control processes, so that workloads never see one number
///   stand for two states. Never 0 (workloads read 0 as "nothing yet").
/// - [`watch`](Self::watch) reports changes made by others (`smictl ca rotate`, `smictl
///   revoke`), not the store's own writes (the ledger, the versions).
/// - Calls may block (files, the network); none is on the per-request path. Enrollment reads
///   the deny list's revision and the ledger, and writes the ledger, once per certificate.
pub trait StateStore: Send + Sync + 'static {
    /// What the store is, for logs (the state directory's path).
    fn name(&self) -> &str;

    // === the CA ===

    /// The CA as stored (roots newest first; retired ones left out of the bundle); on first
    /// start a new root is made and kept.
    fn authority(&self, trust_domain: &str) -> Result<Authority, StoreError>;

    /// When the next root in the bundle retires, if any: the control reloads the CA then.
    fn next_retirement(&self) -> Option<SystemTime>;

    /// The key join tokens are signed with, made on first use.
    fn token_key(&self) -> Result<Vec<u8>, StoreError>;

    // === the deny list ===

    /// Identifies the deny list's current version (`None`: there is none): checked before each
    /// certificate, so it must be cheap (files: one `stat`).
    fn deny_list_revision(&self) -> Option<Revision>;

    /// The deny list (empty when there is none).
    fn deny_list(&self) -> Result<DenyList, StoreError>;

    // === the token-use ledger ===

    /// How many certificates the join token `jti` has bought, if any use is recorded.
    fn token_uses(&self, jti: &str) -> Result<Option<TokenUses>, StoreError>;

    /// Records, durably, that `token` has bought `used` certificates; `read` is its entry as
    /// [`token_uses`](Self::token_uses) returned it (`None`: there was none). The control calls
    /// it before it hands the certificate out, one call at a time per token in a process; a
    /// store shared by several controls records it only if the entry is still as read, so two
    /// controls cannot both spend a last use. Entries of expired tokens may be forgotten (they
    /// cannot enroll anyway).
    fn record_token_use(
        &self,
        token: &TokenUse,
        used: u32,
        read: Option<&TokenUses>,
    ) -> Result<(), StoreError>;

    /// How many join tokens the ledger holds.
    fn tokens_counted(&self) -> Result<usize, StoreError>;

    // === versions ===

    /// Reserves `count` version numbers (see the contract above).
    fn reserve_versions(&self, count: u64) -> Result<Range<u64>, StoreError>;

    /// For a store shared by several controls (etcd): the least version a state published now
    /// may have, derived from the store's own revision, so that every control publishes the
    /// same number for the same state. The hub then numbers from it instead of reserving
    /// ([`crate::hub::Versions`]). `None` (the default): reserve.
    fn shared_version(&self) -> Option<u64> {
        None
    }

    /// Whether the store can be reached now, for the admin API (`/debug/store`) and
    /// `/metrics`. A local store always can (the default).
    fn health(&self) -> StoreHealth {
        StoreHealth {
            connected: true,
            ..StoreHealth::default()
        }
    }

    // === changes ===

    /// Starts calling `changed` when someone else changed the state.
    fn watch(&self, changed: Changed) -> Result<WatchGuard, SourceError>;
}

/// A store's connection, as the admin API shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreHealth {
    /// Whether the control follows the store now: `false` means it serves the last state it
    /// saw, which may be behind.
    pub connected: bool,
    /// The store's revision the control has seen up to (etcd's), if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// Why following the store last failed, if it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When `connected` last changed (0: never).
    pub since_unix: u64,
    /// How many times everything was read again because the store compacted what the control
    /// had not seen.
    pub relists: u64,
}

/// One join token's recorded uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenUses {
    pub used: u32,
    /// When the token expires (Unix seconds): its entry may go after that.
    pub expires_unix: u64,
    /// The entry's version as read, for a store that records the next use only if it is
    /// unchanged (etcd's modification revision); `None` for one that needs none (files).
    pub revision: Option<Revision>,
}

/// Identifies one version of a stored item (a file's inode, modification time and length; an
/// etcd modification revision). Only compared: equal revisions mean an unchanged item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Revision(pub [i64; 4]);

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// A write on a shared store lost to another writer's (nothing was written).
    #[error("{path}: {message}")]
    Conflict { path: PathBuf, message: String },
    #[error("generating a root: {0}")]
    Generate(#[from] rcgen::Error),
    #[error(transparent)]
    Etcd(#[from] crate::etcd::EtcdError),
}
