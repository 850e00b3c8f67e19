//! [`EtcdStore`]: the control's durable state in etcd ([`super::keys`] says where), shared by
//! every replica.
//!
//! - Reads come from the [`Mirror`](super::Mirror) (memory), except the token-use ledger, which
//!   is read from etcd itself: two replicas enrolling with one token at once must not both
//!   see its last use free.
//! - Writes that must not overwrite another replica's are transactions on what was read: a
//!   new CA or token key only where there is none (the first replica's wins, the others take
//!   it), a token's use only if nobody recorded one since, a rotation or a revocation only on
//!   the version it changed.
//! - Versions are the mirror's revision ([`StateStore::shared_version`]).

use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::client::pb;
use super::mirror::Class;
use super::txn::{self, absent, get_op, mod_revision_is, put_op};
use super::{Etcd, EtcdError};
use crate::ca::{Authority, CaFile, TOKEN_KEY_LEN, decode_token_key};
use crate::enroll::TokenUse;
use crate::files::state_files::{invalid, no_randomness};
use crate::revocation::DenyList;
use crate::traits::{
    Changed, Revision, SourceError, StateStore, StoreError, StoreHealth, TokenUses, WatchGuard,
};

use smi_core::proto::VERSION_REVISION_SHIFT;

#[derive(Debug)]
pub struct EtcdStore {
    etcd: Etcd,
    name: String,
    /// Whether the CA has been read: from then on, a CA gone from etcd is an error, not a
    /// reason to make a new one (which would replace the mesh's trust silently).
    ca_seen: AtomicBool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerEntry {
    used: u32,
    expires_unix: u64,
    /// Made afresh by each write: a write retried after its answer was lost finds its own
    /// nonce, and knows it was recorded.
    #[serde(default)]
    nonce: String,
}

/// How long past its token's expiry an entry stays (its lease's extra time to live).
const LEDGER_GRACE_SECS: u64 = 60;

impl EtcdStore {
    pub fn new(etcd: Etcd) -> Self {
        Self {
            name: format!("etcd:{}", etcd.prefix()),
            etcd,
            ca_seen: AtomicBool::new(false),
        }
    }

    /// How errors name a key: `etcd:/smi-mesh/ca`.
    fn origin(key: &str) -> PathBuf {
        PathBuf::from(format!("etcd:{key}"))
    }

    fn keys(&self) -> &super::keys::Keys {
        self.etcd.mirror().keys()
    }

    fn block_on<T: Send + 'static>(
        &self,
        future: impl Future<Output = Result<T, EtcdError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        Ok(self.etcd.runtime().block_on(future)?)
    }

    /// The value of `key` opened with the seal key, from the mirror.
    fn open(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(entry) = self.etcd.mirror().get(key) else {
            return Ok(None);
        };
        self.etcd
            .seal_key(key)?
            .open(key, &entry.value)
            .map(Some)
            .map_err(|e| invalid(&Self::origin(key), e.to_string()))
    }

    /// Writes `sealed` at `key` only if there is no value; when another replica was first,
    /// what it wrote (unsealed).
    fn create_sealed(&self, key: &str, plain: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let sealed = self
            .etcd
            .seal_key(key)?
            .seal(key, plain)
            .map_err(|e| invalid(&Self::origin(key), e.to_string()))?;
        let request = pb::TxnRequest {
            compare: vec![absent(key)],
            success: vec![put_op(key, sealed, 0)],
            failure: vec![get_op(key)],
        };
        let client = self.etcd.client().clone();
        let answer = self.block_on(async move { client.txn(request).await })?;
        if answer.succeeded {
            return Ok(None);
        }
        let theirs = first_range_value(&answer)
            .ok_or_else(|| invalid(&Self::origin(key), "vanished while being created".into()))?;
        self.etcd
            .seal_key(key)?
            .open(key, &theirs)
            .map(Some)
            .map_err(|e| invalid(&Self::origin(key), e.to_string()))
    }

    /// The CA's roots as stored, if there are any.
    fn ca_file(&self) -> Result<Option<CaFile>, StoreError> {
        let key = self.keys().ca();
        self.open(&key)?
            .map(|bytes| CaFile::parse(&bytes, &Self::origin(&key)))
            .transpose()
    }

    /// `smictl ca rotate --etcd`: a new root signs; the others stay trusted for `overlap`.
    /// Fails, changing nothing, if the CA changed while it was being rotated.
    pub fn rotate(&self, trust_domain: &str, overlap: Duration) -> Result<(), StoreError> {
        let key = self.keys().ca();
        let origin = Self::origin(&key);
        let client = self.etcd.client().clone();
        let (stored, _) = {
            let key = key.clone();
            self.block_on(async move { client.get(key.as_bytes()).await })?
        };
        let stored =
            stored.ok_or_else(|| invalid(&origin, "no CA yet: start a replica first".into()))?;
        let plain = self
            .etcd
            .seal_key(&key)?
            .open(&key, &stored.value)
            .map_err(|e| invalid(&origin, e.to_string()))?;
        let mut file = CaFile::parse(&plain, &origin)?;
        file.rotate(trust_domain, overlap)?;
        let sealed = self
            .etcd
            .seal_key(&key)?
            .seal(&key, &file.to_json(&origin)?)
            .map_err(|e| invalid(&origin, e.to_string()))?;
        self.swap(&key, stored.mod_revision, sealed)
    }

    /// `smictl revoke --etcd`: changes the deny list with `change`, in a transaction on the
    /// version it read (retried if another write came between).
    pub fn update_deny_list<T>(
        &self,
        mut change: impl FnMut(&mut DenyList) -> T,
    ) -> Result<T, StoreError> {
        let key = self.keys().revoked();
        let origin = Self::origin(&key);
        for _ in 0..5 {
            let client = self.etcd.client().clone();
            let (stored, _) = {
                let key = key.clone();
                self.block_on(async move { client.get(key.as_bytes()).await })?
            };
            let (mut list, revision) = match &stored {
                Some(kv) => (DenyList::parse(&kv.value, &origin)?, kv.mod_revision),
                None => (DenyList::default(), 0),
            };
            let result = change(&mut list);
            match self.swap(&key, revision, list.to_json(&origin)?) {
                Ok(()) => return Ok(result),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(invalid(
            &origin,
            "changed by others five times while this change was being made; try again".into(),
        ))
    }

    /// Writes `value` at `key` if its modification revision is still `revision` (0: absent).
    fn swap(&self, key: &str, revision: i64, value: Vec<u8>) -> Result<(), StoreError> {
        let request = pb::TxnRequest {
            compare: vec![mod_revision_is(key, revision)],
            success: vec![put_op(key, value, 0)],
            failure: vec![],
        };
        let client = self.etcd.client().clone();
        let answer = self.block_on(async move { client.txn(request).await })?;
        if answer.succeeded {
            Ok(())
        } else {
            Err(StoreError::Conflict {
                path: Self::origin(key),
                message: "changed by someone else meanwhile; nothing written".into(),
            })
        }
    }
}

impl StateStore for EtcdStore {
    fn name(&self) -> &str {
        &self.name
    }

    /// The stored CA; the first replica to start makes it (and the others take that one).
    fn authority(&self, trust_domain: &str) -> Result<Authority, StoreError> {
        let key = self.keys().ca();
        let origin = Self::origin(&key);
        let file = match self.ca_file()? {
            Some(file) => file,
            None if self.ca_seen.load(Ordering::Acquire) => {
                return Err(invalid(
                    &origin,
                    "the CA is gone from etcd; restore it (a new one would make every certificate issued untrusted)".into(),
                ));
            }
            None => {
                let new = CaFile::new(trust_domain)?;
                match self.create_sealed(&key, &new.to_json(&origin)?)? {
                    None => {
                        tracing::info!(key, "created a new root CA in etcd");
                        new
                    }
                    Some(theirs) => CaFile::parse(&theirs, &origin)?,
                }
            }
        };
        let authority = file.authority(trust_domain, &origin)?;
        self.ca_seen.store(true, Ordering::Release);
        Ok(authority)
    }

    fn next_retirement(&self) -> Option<SystemTime> {
        self.ca_file().ok()??.next_retirement()
    }

    fn token_key(&self) -> Result<Vec<u8>, StoreError> {
        let key = self.keys().token_key();
        let origin = Self::origin(&key);
        let text = match self.open(&key)? {
            Some(text) => text,
            None => {
                let mut new = vec![0u8; TOKEN_KEY_LEN];
                aws_lc_rs::rand::fill(&mut new).map_err(|_| no_randomness(&origin))?;
                let text = STANDARD.encode(&new).into_bytes();
                match self.create_sealed(&key, &text)? {
                    None => text,
                    Some(theirs) => theirs,
                }
            }
        };
        let text = String::from_utf8(text).map_err(|_| invalid(&origin, "not UTF-8".into()))?;
        decode_token_key(&origin, &text)
    }

    /// The deny list's modification revision, from the mirror.
    fn deny_list_revision(&self) -> Option<Revision> {
        self.etcd
            .mirror()
            .get(&self.keys().revoked())
            .map(|e| Revision([e.mod_revision, 0, 0, 0]))
    }

    fn deny_list(&self) -> Result<DenyList, StoreError> {
        let key = self.keys().revoked();
        match self.etcd.mirror().get(&key) {
            Some(entry) => DenyList::parse(&entry.value, &Self::origin(&key)),
            None => Ok(DenyList::default()),
        }
    }

    /// Read from etcd itself, not the mirror: another replica may have just spent a use.
    fn token_uses(&self, jti: &str) -> Result<Option<TokenUses>, StoreError> {
        let key = self.keys().token_use(jti);
        let client = self.etcd.client().clone();
        let (stored, _) = {
            let key = key.clone();
            self.block_on(async move { client.get(key.as_bytes()).await })?
        };
        let Some(kv) = stored else {
            return Ok(None);
        };
        let entry: LedgerEntry = serde_json::from_slice(&kv.value)
            .map_err(|e| invalid(&Self::origin(&key), e.to_string()))?;
        Ok(Some(TokenUses {
            used: entry.used,
            expires_unix: entry.expires_unix,
            revision: Some(Revision([kv.mod_revision, 0, 0, 0])),
        }))
    }

    /// Only if the entry is still as `read` (a transaction on its modification revision):
    /// otherwise two replicas could each hand out the token's last use. The entry lives under a
    /// lease that ends a minute after the token does, so the ledger does not grow for ever.
    fn record_token_use(
        &self,
        token: &TokenUse,
        used: u32,
        read: Option<&TokenUses>,
    ) -> Result<(), StoreError> {
        let key = self.keys().token_use(&token.jti);
        let origin = Self::origin(&key);
        let nonce = format!("{:016x}", rand::random::<u64>());
        let value = serde_json::to_vec(&LedgerEntry {
            used,
            expires_unix: token.expires_unix,
            nonce: nonce.clone(),
        })
        .map_err(|e| invalid(&origin, e.to_string()))?;
        let revision = read.and_then(|r| r.revision).map_or(0, |r| r.0[0]);
        let ttl = Duration::from_secs(
            token
                .expires_unix
                .saturating_sub(crate::ca::unix_now())
                .saturating_add(LEDGER_GRACE_SECS),
        );
        let client = self.etcd.client().clone();
        let recorded = {
            let key = key.clone();
            self.block_on(async move {
                let lease = client.grant(ttl).await?;
                let request = pb::TxnRequest {
                    compare: vec![mod_revision_is(&key, revision)],
                    success: vec![put_op(&key, value, lease)],
                    failure: vec![get_op(&key)],
                };
                let answer = client.txn(request).await?;
                Ok(answer.succeeded || ours(&answer, &nonce))
            })?
        };
        if recorded {
            Ok(())
        } else {
            Err(StoreError::Conflict {
                path: origin,
                message:
                    "the token was used through another replica at the same moment; enroll again"
                        .into(),
            })
        }
    }

    /// Counted in etcd (the ledger is not mirrored: nothing reloads when it changes).
    fn tokens_counted(&self) -> Result<usize, StoreError> {
        let prefix = format!("{}{}", self.keys().prefix(), super::keys::TOKEN_USES);
        let client = self.etcd.client().clone();
        let count = self.block_on(async move { client.count(prefix.as_bytes()).await })?;
        Ok(usize::try_from(count).unwrap_or(usize::MAX))
    }
    fn reserve_versions(&self, count: u64) -> Result<Range<u64>, StoreError> {
        let floor = self.shared_version().unwrap_or(1);
        Ok(floor..floor.saturating_add(count))
    }

    /// The revision the listeners were last told of, above [`VERSION_REVISION_SHIFT`]: every
    /// replica that applied the same change numbers it alike.
    fn shared_version(&self) -> Option<u64> {
        let revision = u64::try_from(self.etcd.mirror().dispatched_revision()).unwrap_or(0);
        Some(revision << VERSION_REVISION_SHIFT)
    }

    fn health(&self) -> StoreHealth {
        self.etcd.mirror().health()
    }

    /// Changes of the CA, the token key and the deny list, by any replica or `smictl`.
    fn watch(&self, changed: Changed) -> Result<WatchGuard, SourceError> {
        Ok(self.etcd.mirror().listen(Class::State, changed))
    }
}

/// Whether a failed token-use transaction found this write's own entry (a retry of a write
/// whose answer was lost).
fn ours(answer: &pb::TxnResponse, nonce: &str) -> bool {
    first_range_value(answer)
        .and_then(|value| serde_json::from_slice::<LedgerEntry>(&value).ok())
        .is_some_and(|entry| entry.nonce == nonce)
}

fn first_range_value(answer: &pb::TxnResponse) -> Option<Vec<u8>> {
    txn::found(answer)
        .into_iter()
        .flatten()
        .next()
        .map(|kv| kv.value.clone())
}
