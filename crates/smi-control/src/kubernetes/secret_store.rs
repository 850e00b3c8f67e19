//! [`SecretStore`]: the control's state in one Kubernetes Secret (default
//! `smi-system/smi-control-state`), shared by every replica, so that `serve --kubernetes`
//! needs no state directory (a pod's file system does not outlive it).
//!
//! | key | what |
//! |---|---|
//! | `tls.crt`, `tls.key`, `ca.crt` | the CA in cert-manager's layout: the signing root, its key, the roots still trusted |
//! | `smi-mesh.retiring.json` | when each older root in `ca.crt` retires |
//! | `token.key` | the join-token key (base64 of 32 bytes) |
//! | `revoked.json` | the deny list, as in a state directory |
//! | `token-uses.json` | the token-use ledger, `{"<jti>": {"used", "expires_unix"}}` |
//! | `versions.json` | the version mark, as in a state directory |
//!
//! - The Secret is `kubernetes.io/tls` when this store makes it (a first start: POST; a 409
//!   AlreadyExists means another replica was first, and its CA is the one). One made ahead of
//!   the control (`Opaque` or `kubernetes.io/tls`, so that RBAC can name it) gets a CA if it
//!   has none of the CA keys.
//! - Every write is a read-modify-write: a replace (PUT) carrying the resourceVersion read; a
//!   409 Conflict reads again and retries, a few times, then fails with
//!   [`StoreError::Conflict`]. A token's use is re-checked on each try: it is recorded only if
//!   the count is still the one the enrollment read.
//! - Reads (the CA, the deny list and its revision, the token key) come from a copy kept by a
//!   watch on the Secret; the ledger is read from the API server itself.
//! - What exists is never replaced: a key that cannot be read is an error naming the Secret
//!   and the key; the Secret gone after it was seen is an error, not a new CA.
//! - A signing root replaced underneath (cert-manager renewed `tls.crt`/`tls.key`) stays
//!   trusted for [`DISPLACED_OVERLAP`] (a day), recorded as retiring by the first store that
//!   notices.

mod api;
mod ca;
mod follow;
mod layout;
mod ledger;
#[cfg(test)]
mod tests;

pub use layout::DISPLACED_OVERLAP;
pub use ledger::MAX_TOKENS;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use self::api::{Step, describe};
use self::follow::{AbortOnDrop, Shared, data};
use self::layout::{CaKeys, TLS_CRT, origin, present};
use self::ledger::{Entry, TOKEN_USES, Uses, VERSIONS};
use super::KubeError;
use crate::ca::{Authority, unix_now};
use crate::enroll::TokenUse;
use crate::revocation::DenyList;
use crate::store_runtime::{RuntimeError, StoreRuntime};
use crate::traits::{
    Changed, Revision, SourceError, StateStore, StoreError, StoreHealth, TokenUses, WatchGuard,
};

/// The state Secret's namespace by default (the control's own).
pub const DEFAULT_NAMESPACE: &str = "smi-system";
/// The state Secret's name by default.
pub const DEFAULT_NAME: &str = "smi-control-state";

const TOKEN_KEY: &str = "token.key";
const REVOKED: &str = "revoked.json";
/// The type of a Secret this store makes: cert-manager's, so that it can take the root over.
const SECRET_TYPE: &str = "kubernetes.io/tls";
/// How many times a write is tried when others write between its read and its replace.
const ATTEMPTS: usize = 8;
/// How long [`SecretStore::connect`] waits for the watch's first list.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The control's state in a Secret (see the [module](self)).
pub struct SecretStore {
    _follow: AbortOnDrop,
    runtime: Arc<StoreRuntime>,
    api: Api<Secret>,
    shared: Arc<Shared>,
    /// `kubernetes:secret/<namespace>/<name>`.
    name: String,
    secret: String,
    /// Whether the CA has been read: from then on, a Secret without one is an error.
    ca_seen: AtomicBool,
    /// The signing root this store last used (DER): kept trusted if someone else replaces it.
    last_signer: Mutex<Option<Vec<u8>>>,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStore")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SecretStore {
    /// Connects (a kubeconfig, else as [`client`](super::client) finds one), reads the Secret
    /// `namespace/name` once and starts watching it, waiting for the watch's first list
    /// (10 s at most). Blocking, like [`Etcd::connect`](crate::etcd::Etcd::connect); the
    /// client runs on a runtime of the store's own, so every call works from any thread.
    pub fn connect(
        kubeconfig: Option<&Path>,
        namespace: &str,
        name: &str,
    ) -> Result<SecretStore, KubeError> {
        let runtime = Arc::new(StoreRuntime::new().map_err(|e| KubeError::Client(e.to_string()))?);
        let path: Option<PathBuf> = kubeconfig.map(Path::to_path_buf);
        // kube's client spawns its buffer task on the runtime it is made in: this one.
        let client = runtime
            .block_on(async move { Ok::<_, RuntimeError>(super::client(path.as_deref()).await) })
            .map_err(|e| KubeError::Client(e.to_string()))??;
        let name_of = format!("kubernetes:secret/{namespace}/{name}");
        let api: Api<Secret> = Api::namespaced(client, namespace);
        let shared = Arc::new(Shared::default());
        let first = {
            let (api, name) = (api.clone(), name.to_owned());
            runtime.block_on(async move { Ok::<_, RuntimeError>(api.get_opt(&name).await) })
        }
        .map_err(|e| KubeError::Client(e.to_string()))?
        .map_err(|e| KubeError::Api(format!("{name_of}: reading it: {}", describe(&e))))?;
        shared.read(first);
        let (ready, listed) = tokio::sync::oneshot::channel();
        let follow = AbortOnDrop(runtime.spawn(follow::follow(
            shared.clone(),
            api.clone(),
            name.to_owned(),
            ready,
        )));
        let listed = runtime.block_on(async move {
            Ok::<_, RuntimeError>(tokio::time::timeout(READY_TIMEOUT, listed).await)
        });
        if !matches!(listed, Ok(Ok(Ok(())))) {
            let why = shared.health().last_error.unwrap_or_default();
            return Err(KubeError::Api(format!(
                "{name_of}: its watch did not list it within {READY_TIMEOUT:?} (may this ServiceAccount list and watch it?) {why}"
            )));
        }
        Ok(SecretStore {
            _follow: follow,
            runtime,
            api,
            shared,
            name: name_of,
            secret: name.to_owned(),
            ca_seen: AtomicBool::new(false),
            last_signer: Mutex::new(None),
        })
    }

    /// `smictl revoke` on the Secret: changes the deny list with `change`, on the version read
    /// (retried if others write meanwhile).
    pub fn update_deny_list<T>(
        &self,
        mut change: impl FnMut(&mut DenyList) -> T,
    ) -> Result<T, StoreError> {
        let key = origin(&self.name, REVOKED);
        self.update(REVOKED, |data| {
            let mut list = match present(data, REVOKED) {
                Some(json) => DenyList::parse(json, &key)?,
                None => DenyList::default(),
            };
            let result = change(&mut list);
            data.insert(REVOKED.into(), list.to_json(&key)?);
            Ok(Step::Write(result))
        })
    }
}

impl StateStore for SecretStore {
    fn name(&self) -> &str {
        &self.name
    }

    /// The CA in the Secret; the first replica to start makes the Secret (the others take its
    /// CA). A signing root replaced by someone else stays trusted for [`DISPLACED_OVERLAP`].
    fn authority(&self, trust_domain: &str) -> Result<Authority, StoreError> {
        let data = self.ca_data(trust_domain)?;
        let keys = CaKeys::read(&data, &self.name)?.ok_or_else(|| self.ca_gone())?;
        let previous = self
            .last_signer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (mut file, unrecorded) =
            keys.to_ca_file(previous.as_deref(), unix_now(), &self.name)?;
        let mut signer = keys.signer().to_vec();
        if unrecorded {
            match self.record_displaced(previous.as_deref()) {
                Ok(recorded) => (file, signer) = recorded,
                Err(e) => tracing::warn!(
                    secret = self.name,
                    error = %e,
                    "could not record a displaced root's retire time in the Secret; this control trusts it for the overlap meanwhile"
                ),
            }
        }
        let authority = file.authority(trust_domain, &origin(&self.name, TLS_CRT))?;
        *self.last_signer.lock().unwrap_or_else(|e| e.into_inner()) = Some(signer);
        self.ca_seen.store(true, Ordering::Release);
        Ok(authority)
    }

    fn next_retirement(&self) -> Option<SystemTime> {
        let secret = self.current().ok()??;
        let data = data(&secret);
        let keys = CaKeys::read(&data, &self.name).ok()??;
        let previous = self
            .last_signer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (file, _) = keys
            .to_ca_file(previous.as_deref(), unix_now(), &self.name)
            .ok()?;
        file.next_retirement()
    }

    /// The key in `token.key`, made if the Secret has none.
    fn token_key(&self) -> Result<Vec<u8>, StoreError> {
        let secret = self.current()?.ok_or_else(|| self.absent(TOKEN_KEY))?;
        if let Some(text) = present(&data(&secret), TOKEN_KEY) {
            return self.decode_token_key(text);
        }
        let text = self.update(TOKEN_KEY, |data| match present(data, TOKEN_KEY) {
            Some(text) => Ok(Step::Keep(text.to_vec())),
            None => {
                let text = self.new_token_key()?;
                data.insert(TOKEN_KEY.into(), text.clone());
                Ok(Step::Write(text))
            }
        })?;
        self.decode_token_key(&text)
    }

    /// The SHA-256 of `revoked.json`, from the watched copy.
    fn deny_list_revision(&self) -> Option<Revision> {
        self.shared.deny_revision()
    }

    fn deny_list(&self) -> Result<DenyList, StoreError> {
        let Some(secret) = self.current()? else {
            return Ok(DenyList::default());
        };
        match present(&data(&secret), REVOKED) {
            Some(json) => DenyList::parse(json, &origin(&self.name, REVOKED)),
            None => Ok(DenyList::default()),
        }
    }

    /// Read from the API server, not the copy: another replica may have just spent a use.
    fn token_uses(&self, jti: &str) -> Result<Option<TokenUses>, StoreError> {
        let Some(secret) = self.fetch()? else {
            return match self.shared.ever.load(Ordering::Acquire) {
                true => Err(self.absent(TOKEN_USES)),
                false => Ok(None),
            };
        };
        let revision = secret
            .metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<i64>().ok())
            .map(|v| Revision([v, 0, 0, 0]));
        let uses = Uses::read(&data(&secret), &self.name)?;
        Ok(uses.0.get(jti).map(|entry| TokenUses {
            used: entry.used,
            expires_unix: entry.expires_unix,
            revision,
        }))
    }

    /// Only if the token's count is still what `read` said, checked on every try (the
    /// resourceVersion is the whole Secret's, which unrelated writes change too).
    fn record_token_use(
        &self,
        token: &TokenUse,
        used: u32,
        read: Option<&TokenUses>,
    ) -> Result<(), StoreError> {
        let expected = read.map(|r| r.used);
        self.update(TOKEN_USES, |data| {
            let mut uses = Uses::read(data, &self.name)?;
            if uses.0.get(&token.jti).map(|e| e.used) != expected {
                return Err(StoreError::Conflict {
                    path: origin(&self.name, TOKEN_USES),
                    message: "the token was used through another replica at the same moment; enroll again".into(),
                });
            }
            let entry = Entry {
                used,
                expires_unix: token.expires_unix,
            };
            uses.record(&token.jti, entry, unix_now(), &self.name)?;
            uses.write(data, &self.name)?;
            Ok(Step::Write(()))
        })
    }

    fn tokens_counted(&self) -> Result<usize, StoreError> {
        let Some(secret) = self.current()? else {
            return Ok(0);
        };
        Ok(Uses::read(&data(&secret), &self.name)?.0.len())
    }

    /// The Secret's resourceVersion above
    /// [`VERSION_REVISION_SHIFT`](smi_core::proto::VERSION_REVISION_SHIFT): replicas watch the same
    /// Secret, so they number their states from the same revision, and a workload moving between
    /// them never takes one replica's count for another's state (as on etcd). Until the Secret
    /// has been read: reservations in `versions.json`.
    fn shared_version(&self) -> Option<u64> {
        self.shared
            .revision()
            .map(|revision| revision << smi_core::proto::VERSION_REVISION_SHIFT)
    }

    /// Blocks of numbers above `versions.json`'s mark, moved up on the version read: two
    /// replicas never get the same numbers.
    fn reserve_versions(&self, count: u64) -> Result<Range<u64>, StoreError> {
        self.update(VERSIONS, |data| {
            ledger::reserve(data, count, &self.name).map(Step::Write)
        })
    }

    fn health(&self) -> StoreHealth {
        self.shared.health()
    }

    /// Changes of the CA, the token key or the deny list by others (another replica,
    /// `smictl`, cert-manager, a hand edit), seen by the watch.
    fn watch(&self, changed: Changed) -> Result<WatchGuard, SourceError> {
        let notify = self.shared.listen();
        let task = self.runtime.spawn(follow::tell(notify, changed));
        Ok(WatchGuard::new(AbortOnDrop(task)))
    }
}
