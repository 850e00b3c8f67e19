//! [`Mirror`]: every key under the prefix, in memory, kept by one watch. The other etcd parts
//! read it instead of etcd (a policy reload, the deny list's revision before each certificate),
//! and it tells each of them when their keys change.
//!
//! - It starts from one list at one revision and watches from the next, so no change falls
//!   between the two.
//! - Each watch answer is applied whole, then its listeners are called: the state's (the CA,
//!   the deny list) first, then the policy's, then the endpoints'.
//! - When its revision has been compacted away (a replica that was cut off for long), it lists
//!   again and tells every class that changed: no change is lost, only the steps between.
//! - When etcd is unreachable it keeps what it has (the control keeps serving it), says so in
//!   its [`StoreHealth`], and watches again from where it was when etcd returns.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::client::{EtcdClient, EtcdError, pb};
use super::keys::Keys;
use crate::ca::unix_now;
use crate::store_runtime::StoreRuntime;
use crate::traits::{Changed, StoreHealth, WatchGuard};

/// What a key holds, for whom to tell when it changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// The CA, the token key, the deny list.
    State,
    Policy,
    Endpoints,
    /// The token-use ledger: read from etcd itself when needed, not kept in the mirror (it
    /// changes with every enrollment and is no reason to reload anything).
    Ledger,
}

/// One key's value as the mirror holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub value: Arc<[u8]>,
    pub mod_revision: i64,
}

type Map = BTreeMap<String, Entry>;

struct Listener {
    id: u64,
    class: Class,
    changed: Changed,
}

pub struct Mirror {
    keys: Keys,
    client: EtcdClient,
    map: ArcSwap<Map>,
    revision: AtomicI64,
    /// The revision whose changes the listeners have been told of (set as they are called):
    /// what versions are numbered from, so that a publish made before a change is dispatched
    /// does not take the number the change will have on every replica.
    dispatched: AtomicI64,
    listeners: Mutex<Vec<Listener>>,
    next_listener: AtomicU64,
    health: Mutex<StoreHealth>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("prefix", &self.keys.prefix())
            .field("revision", &self.revision())
            .finish_non_exhaustive()
    }
}

/// Between attempts to watch again while etcd is unreachable.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(2);

impl Mirror {
    /// Lists the prefix (failing when etcd cannot be read) and starts following it.
    pub fn start(
        runtime: &StoreRuntime,
        client: EtcdClient,
        prefix: String,
    ) -> Result<Arc<Self>, EtcdError> {
        let keys = Keys::new(&prefix);
        let listed = {
            let client = client.clone();
            let prefix = keys.prefix().to_owned();
            runtime.block_on(async move { client.list(prefix.as_bytes()).await })?
        };
        let mirror = Arc::new(Self {
            keys,
            client,
            map: ArcSwap::default(),
            revision: AtomicI64::new(0),
            dispatched: AtomicI64::new(0),
            listeners: Mutex::default(),
            next_listener: AtomicU64::new(1),
            health: Mutex::default(),
        });
        mirror.replace(listed);
        mirror
            .dispatched
            .store(mirror.revision(), Ordering::Release);
        mirror.set_health(true, None);
        runtime.spawn(mirror.clone().follow());
        Ok(mirror)
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn prefix(&self) -> &str {
        self.keys.prefix()
    }

    /// The etcd revision the mirror reflects.
    pub fn revision(&self) -> i64 {
        self.revision.load(Ordering::Acquire)
    }

    /// The revision of the changes the listeners have been told of (see the field).
    pub fn dispatched_revision(&self) -> i64 {
        self.dispatched.load(Ordering::Acquire)
    }

    pub fn get(&self, key: &str) -> Option<Entry> {
        self.map.load().get(key).cloned()
    }

    /// Every key starting with `prefix`, in key order.
    pub fn entries(&self, prefix: &str) -> Vec<(String, Entry)> {
        self.map
            .load()
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect()
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.map
            .load()
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .count()
    }

    /// The watch's state: open or not, since when, and why it last failed.
    pub fn health(&self) -> StoreHealth {
        StoreHealth {
            revision: Some(self.revision()),
            ..self.lock_health().clone()
        }
    }

    /// Calls `changed` (on a blocking thread) after each change of keys of `class`, until the
    /// guard is dropped.
    pub fn listen(self: &Arc<Self>, class: Class, changed: Changed) -> WatchGuard {
        let id = self.next_listener.fetch_add(1, Ordering::Relaxed);
        self.lock_listeners().push(Listener { id, class, changed });
        WatchGuard::new(Listening {
            mirror: Arc::downgrade(self),
            id,
        })
    }

    fn lock_listeners(&self) -> std::sync::MutexGuard<'_, Vec<Listener>> {
        self.listeners.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Follows the prefix for as long as the runtime runs.
    async fn follow(self: Arc<Self>) {
        let mut retry = FIRST_RETRY;
        loop {
            match self.watch_once().await {
                Ok(()) => retry = FIRST_RETRY,
                Err(message) => {
                    tracing::warn!(prefix = self.prefix(), error = %message, "etcd watch failed; serving the last state seen and watching again");
                    self.set_health(false, Some(message));
                }
            }
            let millis = u64::try_from(retry.as_millis()).unwrap_or(u64::MAX).max(2);
            tokio::time::sleep(Duration::from_millis(rand::random_range(
                millis / 2..=millis,
            )))
            .await;
            retry = (retry * 2).min(MAX_RETRY);
        }
    }

    /// One watch stream, from the revision after the mirror's, until it ends. `Ok` when it
    /// ended because the mirror had to list again (and did).
    async fn watch_once(&self) -> Result<(), String> {
        let prefix = self.prefix().as_bytes().to_vec();
        let mut watch = self
            .client
            .watch(&prefix, self.revision() + 1)
            .await
            .map_err(|e| e.to_string())?;
        loop {
            let answer = match watch.next().await {
                Ok(Some(answer)) => answer,
                Ok(None) => return Err("the watch stream ended".into()),
                Err(status) => return Err(format!("watch stream: {}", status.message())),
            };
            if answer.compact_revision > 0 {
                tracing::warn!(
                    prefix = self.prefix(),
                    seen = self.revision(),
                    compacted = answer.compact_revision,
                    "etcd compacted past what this replica has seen; listing everything again"
                );
                let listed = self.client.list(&prefix).await.map_err(|e| e.to_string())?;
                let changed = self.replace(listed);
                self.lock_health().relists += 1;
                self.set_health(true, None);
                self.dispatch(changed).await;
                return Ok(());
            }
            if answer.canceled {
                return Err(format!(
                    "etcd cancelled the watch: {}",
                    answer.cancel_reason
                ));
            }
            self.set_health(true, None);
            if answer.created {
                continue;
            }
            let changed = self.apply(&answer);
            self.dispatch(changed).await;
        }
    }

    /// Applies one watch answer whole; the classes it changed.
    fn apply(&self, answer: &pb::WatchResponse) -> BTreeSet<Class> {
        let mut changed = BTreeSet::new();
        if answer.events.is_empty() {
            // A progress notification: every change up to its revision has been sent.
            if let Some(header) = &answer.header {
                self.revision.fetch_max(header.revision, Ordering::AcqRel);
            }
            return changed;
        }
        let mut map = Map::clone(&self.map.load());
        let mut revision = self.revision();
        for event in &answer.events {
            let Some(kv) = &event.kv else { continue };
            revision = revision.max(kv.mod_revision);
            let Ok(key) = std::str::from_utf8(&kv.key) else {
                continue;
            };
            let Some(class) = self.keys.class(key).filter(|c| *c != Class::Ledger) else {
                continue;
            };
            changed.insert(class);
            if event.r#type == pb::event::EventType::Delete as i32 {
                map.remove(key);
            } else {
                map.insert(
                    key.to_owned(),
                    Entry {
                        value: kv.value.as_slice().into(),
                        mod_revision: kv.mod_revision,
                    },
                );
            }
        }
        self.map.store(Arc::new(map));
        self.revision.fetch_max(revision, Ordering::AcqRel);
        changed
    }

    /// Replaces everything with a list; the classes that differ.
    fn replace(&self, (kvs, revision): (Vec<pb::KeyValue>, i64)) -> BTreeSet<Class> {
        let mut map = Map::new();
        for kv in kvs {
            let Ok(key) = String::from_utf8(kv.key) else {
                continue;
            };
            if self.keys.class(&key).is_none_or(|c| c == Class::Ledger) {
                continue;
            }
            map.insert(
                key,
                Entry {
                    value: kv.value.into(),
                    mod_revision: kv.mod_revision,
                },
            );
        }
        let old = self.map.load();
        let mut changed = BTreeSet::new();
        for (key, entry) in old.iter() {
            if map.get(key) != Some(entry) {
                changed.extend(self.keys.class(key));
            }
        }
        for key in map.keys() {
            if !old.contains_key(key) {
                changed.extend(self.keys.class(key));
            }
        }
        self.map.store(Arc::new(map));
        self.revision.fetch_max(revision, Ordering::AcqRel);
        changed
    }

    /// Calls the listeners of `changed`, in the order of [`Class`], on a blocking thread (they
    /// reload, which may block), one after the other; a listener that panics does not keep the
    /// others from being called.
    async fn dispatch(&self, changed: BTreeSet<Class>) {
        self.dispatched.fetch_max(self.revision(), Ordering::AcqRel);
        let callbacks: Vec<Changed> = {
            let listeners = self.lock_listeners();
            changed
                .iter()
                .flat_map(|class| {
                    listeners
                        .iter()
                        .filter(move |l| l.class == *class)
                        .map(|l| l.changed.clone())
                })
                .collect()
        };
        if callbacks.is_empty() {
            return;
        }
        let _ = tokio::task::spawn_blocking(move || {
            for callback in callbacks {
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback())).is_err() {
                    tracing::error!(
                        "a listener of etcd changes panicked; the others are still told"
                    );
                }
            }
        })
        .await;
    }

    fn lock_health(&self) -> std::sync::MutexGuard<'_, StoreHealth> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_health(&self, connected: bool, error: Option<String>) {
        let mut health = self.lock_health();
        if health.connected != connected || health.since_unix == 0 {
            health.since_unix = unix_now();
            if connected {
                tracing::info!(prefix = self.prefix(), "etcd watch open");
            }
        }
        health.connected = connected;
        if error.is_some() {
            health.last_error = error;
        }
    }
}

/// A listener's registration; dropping it removes the listener.
struct Listening {
    mirror: Weak<Mirror>,
    id: u64,
}

impl Drop for Listening {
    fn drop(&mut self) {
        if let Some(mirror) = self.mirror.upgrade() {
            mirror.lock_listeners().retain(|l| l.id != self.id);
        }
    }
}
