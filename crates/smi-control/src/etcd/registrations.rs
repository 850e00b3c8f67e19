//! [`LeasedRegistrations`]: where a replica's Register streams go in etcd. Each service's list
//! of this replica's registrations is one key, written under one lease that the replica keeps
//! alive (a third of its time to live). When the replica dies the lease runs out, etcd deletes
//! its keys, and the workloads, whose Register streams broke, register again through another
//! replica.
//!
//! Writes go through one task, and a burst is coalesced: what is written for a service is the
//! newest list the registry set. When etcd fails, the task
//! keeps the lists and writes them again once it can; when the lease was lost (etcd was away for
//! longer than its time to live), it takes a new one and writes every list again.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use smi_core::ServiceRef;
use tokio::sync::mpsc;

use super::client::EtcdClient;
use super::endpoints::StoredEndpoint;
use super::keys::Keys;
use super::{Etcd, EtcdError};
use crate::hub::Endpoint;
use crate::registry::RegistrySink;

type Changes = Vec<(ServiceRef, Vec<Endpoint>)>;

/// A [`RegistrySink`] writing to etcd under this replica's lease.
#[derive(Debug)]
pub struct LeasedRegistrations {
    changes: mpsc::UnboundedSender<Changes>,
}

/// How soon a failed write is tried again.
const RETRY: Duration = Duration::from_millis(500);

impl LeasedRegistrations {
    /// Starts the writer for replica `replica` (its keys' name), with leases of `ttl`.
    pub fn start(etcd: &Etcd, replica: String, ttl: Duration) -> Self {
        let (changes, rx) = mpsc::unbounded_channel();
        let writer = Writer {
            client: etcd.client().clone(),
            keys: etcd.mirror().keys().clone(),
            replica,
            ttl: ttl.max(Duration::from_secs(2)),
            desired: HashMap::new(),
            dirty: BTreeSet::new(),
            lease: None,
        };
        etcd.runtime().spawn(writer.run(rx));
        Self { changes }
    }
}

impl RegistrySink for LeasedRegistrations {
    fn set(&self, changes: Changes) {
        // The writer ends only with the runtime; then nothing is written anyway.
        let _ = self.changes.send(changes);
    }

    /// Nothing to wait for: every replica reads every replica's keys, listed at its start.
    fn synced(&self) {}
}

struct Writer {
    client: EtcdClient,
    keys: Keys,
    replica: String,
    ttl: Duration,
    /// This replica's lists, as the registry set them last.
    desired: HashMap<ServiceRef, Vec<Endpoint>>,
    /// Services whose list is not yet written as it is now.
    dirty: BTreeSet<ServiceRef>,
    lease: Option<i64>,
}

impl Writer {
    async fn run(mut self, mut changes: mpsc::UnboundedReceiver<Changes>) {
        let mut keep_alive = tokio::time::interval(self.ttl / 3);
        keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                received = changes.recv() => {
                    let Some(first) = received else { break };
                    self.take(first);
                    while let Ok(more) = changes.try_recv() {
                        self.take(more);
                    }
                }
                _ = keep_alive.tick() => self.keep_alive().await,
                () = tokio::time::sleep(RETRY), if !self.dirty.is_empty() => {}
            }
            self.write().await;
        }
        // The registry is gone (the control stops). The lease is left to run out rather than
        // revoked: by then the workloads have registered through another replica, and their
        // endpoints never vanish from views in between (two replicas holding one endpoint
        // count it once).
    }

    fn take(&mut self, changes: Changes) {
        for (service, list) in changes {
            self.dirty.insert(service.clone());
            self.desired.insert(service, list);
        }
    }

    async fn keep_alive(&mut self) {
        let Some(lease) = self.lease else { return };
        match self.client.keep_alive(lease).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    replica = self.replica,
                    "the registrations' lease ran out (etcd was unreachable for longer than it lives); writing them again under a new one"
                );
                self.lease = None;
                self.dirty.extend(self.desired.keys().cloned());
            }
            Err(e) => {
                tracing::warn!(replica = self.replica, error = %e, "cannot renew the registrations' lease");
            }
        }
    }

    /// Writes every dirty list; what fails stays dirty.
    async fn write(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        let lease = match self.lease {
            Some(lease) => lease,
            None => match self.client.grant(self.ttl).await {
                Ok(lease) => {
                    self.lease = Some(lease);
                    lease
                }
                Err(e) => {
                    tracing::warn!(replica = self.replica, error = %e, "cannot take a lease for registrations; trying again");
                    return;
                }
            },
        };
        let mut pending = std::mem::take(&mut self.dirty).into_iter();
        while let Some(service) = pending.next() {
            let key = self.keys.endpoints(&self.replica, &service);
            let list = self.desired.get(&service).cloned().unwrap_or_default();
            let written = if list.is_empty() {
                self.client.delete(key.as_bytes()).await
            } else {
                let stored: Vec<StoredEndpoint> =
                    list.iter().map(StoredEndpoint::from_endpoint).collect();
                match serde_json::to_vec(&stored) {
                    Ok(value) => self.client.put(key.as_bytes(), &value, lease).await,
                    Err(e) => {
                        tracing::error!(key, error = %e, "cannot encode registrations; not written");
                        continue;
                    }
                }
            };
            match written {
                Ok(_) if list.is_empty() => {
                    self.desired.remove(&service);
                }
                Ok(_) => {}
                // etcd no longer has the lease (it ran out while etcd was away): a new one, and
                // every list written again under it.
                Err(EtcdError::Refused {
                    code: tonic::Code::NotFound,
                    ..
                }) => {
                    tracing::warn!(
                        replica = self.replica,
                        "the registrations' lease is gone; writing them again under a new one"
                    );
                    self.lease = None;
                    self.dirty.extend(self.desired.keys().cloned());
                    return;
                }
                // etcd refused this one (too large, not permitted): said, and left; the others
                // are written.
                Err(e @ EtcdError::Refused { .. }) => {
                    tracing::error!(replica = self.replica, key, error = %e, "etcd refused registrations; they are not shared with the other replicas");
                }
                // Unreachable: this one and the rest are kept, and tried again.
                Err(e) => {
                    tracing::warn!(replica = self.replica, key, error = %e, "cannot write registrations; trying again");
                    self.dirty.insert(service);
                    self.dirty.extend(pending);
                    return;
                }
            }
        }
    }
}
