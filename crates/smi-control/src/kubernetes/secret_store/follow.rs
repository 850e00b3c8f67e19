//! The store's copy of the Secret, kept by a kube-rs `watcher` on that one Secret (run on the
//! store's runtime), and the listeners told when someone else changed what the control reads
//! (the CA, the token key, the deny list; not the ledger or the versions).
//!
//! Whether a change is someone else's: the watch keeps the fingerprint of what it last saw of
//! those keys. An event that changes it is reported, unless it is one of this store's own
//! writes made on top of exactly that (a write on top of a change the watch had not shown yet
//! is reported: it carries that change).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::{Notify, oneshot};

use super::layout::{CA_CRT, Data, RETIRING, TLS_CRT, TLS_KEY};
use super::{REVOKED, TOKEN_KEY};
use crate::ca::unix_now;
use crate::traits::{Revision, StoreHealth};

/// The keys whose change is a reason for the control to reload.
const WATCHED_KEYS: [&str; 6] = [TLS_CRT, TLS_KEY, CA_CRT, RETIRING, TOKEN_KEY, REVOKED];

/// How many of its own writes the store remembers (the watch is rarely further behind).
const OWN_WRITES: usize = 64;

/// What the watched keys hold (`None`: no Secret).
pub(super) type Fingerprint = Option<[u8; 32]>;

/// The Secret as last seen (by the watch, a read or a write).
#[derive(Clone, Debug, Default)]
pub(super) struct Seen {
    /// `None`: there is none.
    pub secret: Option<Arc<Secret>>,
    resource_version: Option<String>,
    deny: Option<Revision>,
}

/// What the store and its watch share.
#[derive(Debug, Default)]
pub(super) struct Shared {
    seen: Mutex<Seen>,
    /// Whether the Secret was ever seen: from then on, its absence is an error, not a reason to
    /// make a new CA.
    pub ever: AtomicBool,
    /// This store's writes: their resourceVersion, and the fingerprint they were made on.
    own: Mutex<VecDeque<(String, Fingerprint)>>,
    listeners: Mutex<Vec<Weak<Notify>>>,
    health: Mutex<StoreHealth>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The Secret's data, decoded.
pub(super) fn data(secret: &Secret) -> Data {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

pub(super) fn fingerprint(secret: Option<&Secret>) -> Fingerprint {
    let secret = secret?;
    let data = secret.data.as_ref();
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for key in WATCHED_KEYS {
        match data.and_then(|d| d.get(key)) {
            Some(value) => {
                ctx.update(&[1]);
                ctx.update(&(value.0.len() as u64).to_be_bytes());
                ctx.update(&value.0);
            }
            None => ctx.update(&[0]),
        }
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Some(out)
}

/// The deny list's identity: the SHA-256 of `revoked.json`'s bytes.
fn deny_revision(secret: Option<&Secret>) -> Option<Revision> {
    let value = secret?.data.as_ref()?.get(REVOKED)?;
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &value.0);
    let mut words = [0i64; 4];
    for (word, chunk) in words.iter_mut().zip(hash.as_ref().chunks_exact(8)) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        *word = i64::from_be_bytes(bytes);
    }
    Some(Revision(words))
}

/// Whether resourceVersion `new` may replace `old`: they are etcd revisions in practice, but
/// opaque by contract, so one that is not a number always may.
fn not_older(new: Option<&str>, old: Option<&str>) -> bool {
    match (new.map(str::parse::<u64>), old.map(str::parse::<u64>)) {
        (Some(Ok(new)), Some(Ok(old))) => new >= old,
        _ => true,
    }
}

// === impl Shared ===

impl Shared {
    pub fn seen(&self) -> Seen {
        lock(&self.seen).clone()
    }

    /// The resourceVersion of the copy held, as a number (the API server's are its etcd's
    /// revisions; `None` if it is not one).
    pub fn revision(&self) -> Option<u64> {
        self.seen().resource_version?.parse().ok()
    }

    pub fn deny_revision(&self) -> Option<Revision> {
        lock(&self.seen).deny
    }

    /// Takes `secret` (`None`: gone, as of `resource_version`) unless what is held is newer.
    pub fn observe(&self, secret: Option<Secret>, resource_version: Option<String>) {
        if secret.is_some() {
            self.ever.store(true, Ordering::Release);
        }
        let mut seen = lock(&self.seen);
        if !not_older(
            resource_version.as_deref(),
            seen.resource_version.as_deref(),
        ) {
            return;
        }
        seen.deny = deny_revision(secret.as_ref());
        seen.secret = secret.map(Arc::new);
        seen.resource_version = resource_version;
    }

    /// Takes the answer to a read.
    pub fn read(&self, secret: Option<Secret>) {
        let version = secret
            .as_ref()
            .and_then(|s| s.metadata.resource_version.clone());
        self.observe(secret, version);
    }

    /// Takes the answer to this store's own write, made on a Secret of fingerprint `before`.
    pub fn wrote(&self, stored: Secret, before: Fingerprint) {
        if let Some(version) = stored.metadata.resource_version.clone() {
            let mut own = lock(&self.own);
            if own.len() == OWN_WRITES {
                own.pop_front();
            }
            own.push_back((version, before));
        }
        self.read(Some(stored));
    }

    fn is_own(&self, resource_version: Option<&str>, before: &Fingerprint) -> bool {
        resource_version.is_some_and(|v| {
            lock(&self.own)
                .iter()
                .any(|(own, base)| own == v && base == before)
        })
    }

    /// A listener: notified (one permit, so bursts coalesce) after each change by others.
    pub fn listen(&self) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        let mut listeners = lock(&self.listeners);
        listeners.retain(|l| l.strong_count() > 0);
        listeners.push(Arc::downgrade(&notify));
        notify
    }

    fn tell_listeners(&self) {
        for listener in lock(&self.listeners).iter().filter_map(Weak::upgrade) {
            listener.notify_one();
        }
    }

    pub fn health(&self) -> StoreHealth {
        let mut health = lock(&self.health).clone();
        health.revision = lock(&self.seen)
            .resource_version
            .as_deref()
            .and_then(|v| v.parse().ok());
        health
    }

    fn connected(&self, connected: bool, error: Option<String>) {
        let mut health = lock(&self.health);
        if health.connected != connected {
            health.connected = connected;
            health.since_unix = unix_now();
        }
        if error.is_some() {
            health.last_error = error;
        }
    }
}

/// Follows the Secret `name` until the task is aborted; `ready` is sent once the first list
/// is in.
pub(super) async fn follow(
    shared: Arc<Shared>,
    api: Api<Secret>,
    name: String,
    ready: oneshot::Sender<()>,
) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher::watcher(api, config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut ready = Some(ready);
    // Listed so far, between `Init` and `InitDone`.
    let mut listed: Option<Secret> = None;
    // What the watched keys held when last seen (`None` until the first list is in).
    let mut last: Option<Fingerprint> = None;
    let mut change = |secret: Option<Secret>, version: Option<String>| {
        let now = fingerprint(secret.as_ref());
        let others =
            last.is_some_and(|last| last != now && !shared.is_own(version.as_deref(), &last));
        last = Some(now);
        shared.observe(secret, version);
        if others {
            shared.tell_listeners();
        }
    };
    while let Some(event) = stream.next().await {
        let ours = |s: &Secret| s.metadata.name.as_deref() == Some(name.as_str());
        match event {
            Ok(Event::Init) => {
                listed = None;
                if ready.is_none() {
                    lock(&shared.health).relists += 1;
                }
            }
            Ok(Event::InitApply(secret)) if ours(&secret) => listed = Some(secret),
            Ok(Event::InitDone) => {
                let secret = listed.take();
                let version = secret
                    .as_ref()
                    .and_then(|s| s.metadata.resource_version.clone());
                change(secret, version);
                shared.connected(true, None);
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
            }
            Ok(Event::Apply(secret)) if ours(&secret) => {
                let version = secret.metadata.resource_version.clone();
                change(Some(secret), version);
                shared.connected(true, None);
            }
            Ok(Event::Delete(secret)) if ours(&secret) => {
                tracing::warn!(secret = name, "the state Secret was deleted");
                change(None, secret.metadata.resource_version.clone());
            }
            Ok(_) => {}
            Err(e) => {
                if lock(&shared.health).connected {
                    tracing::warn!(secret = name, error = %e, "watching the state Secret failed; serving what was seen last and retrying");
                }
                shared.connected(false, Some(e.to_string()));
            }
        }
    }
}

/// Calls `changed` on a blocking thread after each notification of `notify`, until aborted.
pub(super) async fn tell(notify: Arc<Notify>, changed: crate::traits::Changed) {
    loop {
        notify.notified().await;
        let changed = changed.clone();
        let _ = tokio::task::spawn_blocking(move || changed()).await;
    }
}

/// Aborts a task when dropped.
#[derive(Debug)]
pub(super) struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
