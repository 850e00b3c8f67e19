//! The endpoint registry: which address serves which service, and with which identity, as
//! serving workloads register them. One [`EndpointSource`], fed by the Register API.
//!
//! A registration lives as long as the workload's `Register` stream and its heartbeats. A
//! change publishes the services it touches, and only those (a new version for subscribers).
//! Quotas bound what one identity can register ([`Quotas::endpoints_per_registration`],
//! `endpoints_per_identity`). The registry is synced one lease after it starts: by then every
//! live server has had a lease to register again.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use smi_core::{ServiceRef, SpiffeId};
use tokio::sync::watch;

use crate::hub::{Endpoint, EndpointSink, Hub};
use crate::quota::{Exceeded, Quotas, at_most};
use crate::traits::EndpointSource;

/// How long a registration lives without a heartbeat, unless configured. 15 s: three missed
/// heartbeats of a workload's 5 s.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

/// One endpoint as registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registered {
    pub service: ServiceRef,
    pub address: SocketAddr,
}

#[derive(Debug)]
struct Registration {
    identity: SpiffeId,
    endpoints: Vec<Registered>,
}

#[derive(Debug, Default)]
struct Table {
    registrations: HashMap<u64, Registration>,
    /// The registrations naming each service, in registration order.
    by_service: HashMap<ServiceRef, BTreeSet<u64>>,
}

/// Where the registry's lists of endpoints go: this control's slot in its hub
/// ([`EndpointSink`]), or a store that every replica reads
/// ([`LeasedRegistrations`](crate::etcd::LeasedRegistrations)).
pub trait RegistrySink: Send + Sync + std::fmt::Debug + 'static {
    /// The registrations of each service listed, whole lists (an empty one: none left).
    fn set(&self, changes: Vec<(ServiceRef, Vec<Endpoint>)>);
    /// Every live server has had a lease to register again since the control started.
    fn synced(&self);
}

impl RegistrySink for Box<dyn RegistrySink> {
    fn set(&self, changes: Vec<(ServiceRef, Vec<Endpoint>)>) {
        (**self).set(changes);
    }

    fn synced(&self) {
        (**self).synced();
    }
}

impl RegistrySink for EndpointSink {
    fn set(&self, changes: Vec<(ServiceRef, Vec<Endpoint>)>) {
        EndpointSink::set(self, changes);
    }

    fn synced(&self) {
        EndpointSink::synced(self);
    }
}

#[derive(Debug)]
pub struct Registry {
    sink: Arc<dyn RegistrySink>,
    quotas: Quotas,
    lease: Duration,
    next: AtomicU64,
    table: Mutex<Table>,
}

/// Why a registration was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("the credential does not grant serving {service} (it grants: {granted})")]
    NotGranted { service: String, granted: String },
    #[error("endpoints[{index}]: {message}")]
    Invalid { index: usize, message: String },
    #[error(transparent)]
    Quota(#[from] Exceeded),
}

impl Registry {
    /// A registry on its own slot of `hub`, with the default quotas and lease.
    pub fn new(hub: Arc<Hub>) -> Arc<Self> {
        Self::with_quotas(hub, Quotas::default())
    }

    pub fn with_quotas(hub: Arc<Hub>, quotas: Quotas) -> Arc<Self> {
        Self::from_sink(hub.endpoint_sink("registrations"), quotas, DEFAULT_LEASE)
    }

    /// A registry publishing through `sink`, synced `lease` after it starts running.
    pub fn from_sink(sink: impl RegistrySink, quotas: Quotas, lease: Duration) -> Arc<Self> {
        Arc::new(Self {
            sink: Arc::new(sink),
            quotas,
            lease,
            next: AtomicU64::new(1),
            table: Mutex::default(),
        })
    }

    /// The most endpoints one registration may list.
    pub fn max_per_registration(&self, count: usize) -> Result<(), RegisterError> {
        Ok(at_most(
            count,
            self.quotas.endpoints_per_registration,
            "endpoints in one registration",
        )?)
    }

    /// Refuses a service the credential does not grant.
    pub fn check_granted(
        granted: &[ServiceRef],
        service: &ServiceRef,
    ) -> Result<(), RegisterError> {
        if granted.contains(service) {
            return Ok(());
        }
        Err(RegisterError::NotGranted {
            service: service.to_string(),
            granted: if granted.is_empty() {
                "nothing".to_owned()
            } else {
                granted
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
    }

    /// Adds checked endpoints for `identity` (within its quota) and publishes their services;
    /// returns the registration's id. See [`Registry::register`] for a request off the wire.
    pub fn add(
        &self,
        identity: &SpiffeId,
        endpoints: Vec<Registered>,
    ) -> Result<u64, RegisterError> {
        let mut table = self.lock();
        let held: usize = table
            .registrations
            .values()
            .filter(|r| r.identity == *identity)
            .map(|r| r.endpoints.len())
            .sum();
        at_most(
            held + endpoints.len(),
            self.quotas.endpoints_per_identity,
            &format!("endpoints registered by {identity}"),
        )?;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let services: BTreeSet<ServiceRef> = endpoints.iter().map(|e| e.service.clone()).collect();
        for service in &services {
            table
                .by_service
                .entry(service.clone())
                .or_default()
                .insert(id);
        }
        table.registrations.insert(
            id,
            Registration {
                identity: identity.clone(),
                endpoints,
            },
        );
        self.publish(&table, services);
        Ok(id)
    }

    pub fn remove(&self, id: u64) {
        let mut table = self.lock();
        let Some(gone) = table.registrations.remove(&id) else {
            return;
        };
        let services: BTreeSet<ServiceRef> =
            gone.endpoints.into_iter().map(|e| e.service).collect();
        for service in &services {
            if let Some(ids) = table.by_service.get_mut(service) {
                ids.remove(&id);
                if ids.is_empty() {
                    table.by_service.remove(service);
                }
            }
        }
        self.publish(&table, services);
    }

    pub fn endpoint_count(&self) -> usize {
        self.lock()
            .registrations
            .values()
            .map(|r| r.endpoints.len())
            .sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // Each change leaves the table whole: the maps are updated before anything can fail.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes the lists of `services`: their endpoints over every registration, in
    /// registration order. Called under the lock, so that publishes keep the table's order.
    fn publish(&self, table: &Table, services: BTreeSet<ServiceRef>) {
        let changes = services.into_iter().map(|service| {
            let endpoints = table
                .by_service
                .get(&service)
                .into_iter()
                .flatten()
                .filter_map(|id| table.registrations.get(id))
                .flat_map(|r| {
                    r.endpoints
                        .iter()
                        .filter(|e| e.service == service)
                        .map(|e| Endpoint {
                            address: e.address,
                            identity: r.identity.clone(),
                        })
                })
                .collect();
            (service, endpoints)
        });
        self.sink.set(changes.collect());
    }
}

impl EndpointSource for Registry {
    /// Registrations arrive through the API; running only marks the registry synced once every
    /// live server has had one lease to register again after a (re)start.
    fn run(self: Arc<Self>, mut stopping: watch::Receiver<bool>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            tokio::select! {
                () = tokio::time::sleep(self.lease) => {
                    self.sink.synced();
                }
                _ = stopping.wait_for(|stop| *stop) => {}
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(sa: &str) -> SpiffeId {
        format!("spiffe://cluster.local/ns/shop/sa/{sa}")
            .parse()
            .unwrap()
    }

    fn at(service: &str, addr: &str) -> Registered {
        Registered {
            service: ServiceRef::new("shop", service),
            address: addr.parse().unwrap(),
        }
    }

    fn addresses(hub: &Hub, service: &str) -> Vec<String> {
        hub.latest()
            .endpoints
            .get(&ServiceRef::new("shop", service))
            .map(|list| list.iter().map(|e| e.address.to_string()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn registrations_publish_their_services_in_registration_order_until_removed() {
        let hub = Hub::new(false);
        let registry = Registry::new(hub.clone());
        let first = registry
            .add(
                &id("web"),
                vec![at("web", "10.0.0.1:80"), at("api", "10.0.0.1:81")],
            )
            .unwrap();
        let api_list = hub.latest().endpoints[&ServiceRef::new("shop", "api")].clone();
        registry
            .add(&id("web"), vec![at("web", "10.0.0.2:80")])
            .unwrap();
        assert_eq!(addresses(&hub, "web"), ["10.0.0.1:80", "10.0.0.2:80"]);
        // The second registration touched `web` only: `api`'s list is the one published before.
        assert!(Arc::ptr_eq(
            &api_list,
            &hub.latest().endpoints[&ServiceRef::new("shop", "api")]
        ));
        registry.remove(first);
        assert_eq!(addresses(&hub, "web"), ["10.0.0.2:80"]);
        assert!(addresses(&hub, "api").is_empty());
        assert_eq!(registry.endpoint_count(), 1);
    }

    #[test]
    fn an_identity_is_held_to_its_quota_over_all_its_registrations() {
        let hub = Hub::new(false);
        let quotas = Quotas {
            endpoints_per_identity: 2,
            ..Quotas::default()
        };
        let registry = Registry::with_quotas(hub, quotas);
        registry
            .add(&id("web"), vec![at("web", "10.0.0.1:80")])
            .unwrap();
        registry
            .add(&id("web"), vec![at("web", "10.0.0.2:80")])
            .unwrap();
        let refused = registry
            .add(&id("web"), vec![at("web", "10.0.0.3:80")])
            .unwrap_err();
        assert!(matches!(refused, RegisterError::Quota(_)), "{refused}");
        registry
            .add(&id("api"), vec![at("api", "10.0.0.4:80")])
            .unwrap();
    }

    #[tokio::test]
    async fn the_registry_is_synced_one_lease_after_it_starts() {
        let hub = Hub::new(false);
        let lease = Duration::from_millis(200);
        let registry =
            Registry::from_sink(hub.endpoint_sink("registrations"), Quotas::default(), lease);
        let (_stop, stopping) = watch::channel(false);
        let source: Arc<dyn EndpointSource> = registry;
        let started = tokio::time::Instant::now();
        tokio::spawn(source.run(stopping));
        assert!(hub.latest().endpoints_partial);
        let mut published = hub.subscribe();
        tokio::time::timeout(
            Duration::from_secs(10),
            published.wait_for(|p| !p.endpoints_partial),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(started.elapsed() >= lease);
    }
}
