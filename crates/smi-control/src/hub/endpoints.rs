//! Endpoints as the hub keeps them: per source and per service, each source in its own slot,
//! and their merge, which is what gets published. A change to one service of one source
//! re-merges that service only; every other service's list is shared with the previous version.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use smi_core::{ServiceRef, SpiffeId};

use super::Hub;

/// One address serving a service, and the identity its server must present.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub address: SocketAddr,
    pub identity: SpiffeId,
}

/// Endpoints by service, merged over every source: what views are made of.
pub type EndpointTable = HashMap<ServiceRef, Arc<[Endpoint]>>;

/// Every source's endpoints, kept apart, and their merge.
#[derive(Debug, Default)]
pub(super) struct Slots {
    slots: Vec<Slot>,
    merged: Arc<EndpointTable>,
}

#[derive(Debug)]
struct Slot {
    name: String,
    /// The source has set everything it knows of.
    synced: bool,
    services: HashMap<ServiceRef, Arc<[Endpoint]>>,
}

impl Slots {
    /// A new, empty and not yet synced slot; its index.
    pub(super) fn add(&mut self, name: &str) -> usize {
        self.slots.push(Slot {
            name: name.to_owned(),
            synced: false,
            services: HashMap::new(),
        });
        self.slots.len() - 1
    }

    /// Replaces `slot`'s endpoints of `service` (none: it has none), and re-merges that service.
    pub(super) fn set(&mut self, slot: usize, service: ServiceRef, endpoints: Vec<Endpoint>) {
        let own = &mut self.slots[slot].services;
        if endpoints.is_empty() {
            own.remove(&service);
        } else {
            own.insert(service.clone(), endpoints.into());
        }
        let lists: Vec<&Arc<[Endpoint]>> = self
            .slots
            .iter()
            .filter_map(|s| s.services.get(&service))
            .collect();
        let merged = Arc::make_mut(&mut self.merged);
        match lists.as_slice() {
            [] => {
                merged.remove(&service);
            }
            [only] => {
                merged.insert(service, Arc::clone(only));
            }
            several => {
                let all = several.iter().flat_map(|list| list.iter().cloned());
                merged.insert(service, all.collect());
            }
        }
    }

    /// Replaces `slot`'s whole table: the services whose list differs are set, those it no
    /// longer lists are cleared. Whether anything changed.
    pub(super) fn replace(
        &mut self,
        slot: usize,
        mut table: HashMap<ServiceRef, Vec<Endpoint>>,
    ) -> bool {
        let gone: Vec<ServiceRef> = self.slots[slot]
            .services
            .keys()
            .filter(|s| !table.contains_key(*s))
            .cloned()
            .collect();
        let mut changed = false;
        for service in gone {
            self.set(slot, service, Vec::new());
            changed = true;
        }
        table.retain(|_, list| !list.is_empty());
        for (service, list) in table {
            let same = self.slots[slot]
                .services
                .get(&service)
                .is_some_and(|held| **held == *list);
            if !same {
                self.set(slot, service, list);
                changed = true;
            }
        }
        changed
    }

    pub(super) fn synced(&mut self, slot: usize) {
        self.slots[slot].synced = true;
    }

    /// Whether some source has not said everything yet (a hub without sources knows nothing).
    pub(super) fn partial(&self) -> bool {
        self.slots.is_empty() || self.slots.iter().any(|s| !s.synced)
    }

    pub(super) fn merged(&self) -> Arc<EndpointTable> {
        self.merged.clone()
    }

    pub(super) fn name(&self, slot: usize) -> &str {
        &self.slots[slot].name
    }
}

/// One endpoint source's slot in the hub: the only way it publishes endpoints, and only its own.
#[derive(Clone, Debug)]
pub struct EndpointSink {
    hub: Arc<Hub>,
    slot: usize,
}

impl Hub {
    /// A new slot for an endpoint source named `name` (for logs). Until the source says it is
    /// [`synced`](EndpointSink::synced), views say `endpoints_partial`.
    pub fn endpoint_sink(self: &Arc<Self>, name: &str) -> EndpointSink {
        let mut slot = 0;
        self.update(|c| slot = c.endpoints.add(name));
        EndpointSink {
            hub: self.clone(),
            slot,
        }
    }
}

impl EndpointSink {
    /// Sets this source's endpoints of each service listed, whole lists (an empty one: the
    /// source has none for it); one new version for them all. Returns it.
    pub fn set(&self, changes: impl IntoIterator<Item = (ServiceRef, Vec<Endpoint>)>) -> u64 {
        self.hub.update(|c| {
            for (service, endpoints) in changes {
                c.endpoints.set(self.slot, service, endpoints);
            }
        })
    }

    /// Sets this source's whole table (every service it has endpoints for); only the services
    /// whose list changed are published, in one new version, and none when nothing changed.
    pub fn replace(&self, table: HashMap<ServiceRef, Vec<Endpoint>>) -> Option<u64> {
        self.hub
            .update_if(|c| c.endpoints.replace(self.slot, table))
    }

    /// Says that the source has set every endpoint it knows of.
    pub fn synced(&self) -> u64 {
        self.hub.update(|c| {
            tracing::debug!(
                source = c.endpoints.name(self.slot),
                "endpoint source synced"
            );
            c.endpoints.synced(self.slot);
        })
    }
}
