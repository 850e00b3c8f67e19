//! The endpoint registry: which address serves which service, and with which identity.
//!
//! A registration lives as long as the workload's `Register` stream and its heartbeats; the
//! table is republished (a new version for subscribers) on every change. Quotas bound what one
//! identity can register ([`Quotas::endpoints_per_registration`], `endpoints_per_identity`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use smi_core::proto::v1;
use smi_core::{ServiceRef, SpiffeId};

use crate::distribute::{EndpointTable, Hub};
use crate::quota::{Exceeded, Quotas, at_most};

/// One endpoint as registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registered {
    pub service: ServiceRef,
    pub address: IpAddr,
    pub port: u16,
}

#[derive(Debug)]
struct Registration {
    identity: SpiffeId,
    endpoints: Vec<Registered>,
}

#[derive(Debug)]
pub struct Registry {
    hub: Arc<Hub>,
    quotas: Quotas,
    next: AtomicU64,
    registrations: Mutex<HashMap<u64, Registration>>,
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
    /// A registry with the default quotas.
    pub fn new(hub: Arc<Hub>) -> Arc<Self> {
        Self::with_quotas(hub, Quotas::default())
    }

    pub fn with_quotas(hub: Arc<Hub>, quotas: Quotas) -> Arc<Self> {
        Arc::new(Self {
            hub,
            quotas,
            next: AtomicU64::new(1),
            registrations: Mutex::new(HashMap::new()),
        })
    }

    /// Checks the request against what the credential grants and adds it; returns its id.
    pub fn register(
        &self,
        identity: &SpiffeId,
        granted: &[ServiceRef],
        request: &[v1::EndpointRegistration],
    ) -> Result<u64, RegisterError> {
        at_most(
            request.len(),
            self.quotas.endpoints_per_registration,
            "endpoints in one registration",
        )?;
        let mut endpoints = Vec::with_capacity(request.len());
        for (index, e) in request.iter().enumerate() {
            let invalid = |message: String| RegisterError::Invalid { index, message };
            let service: ServiceRef = e
                .service
                .parse()
                .map_err(|err| invalid(format!("service: {err}")))?;
            if !granted.contains(&service) {
                return Err(RegisterError::NotGranted {
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
                });
            }
            let address: IpAddr = e
                .address
                .parse()
                .map_err(|_| invalid(format!("address: {:?} is not an IP address", e.address)))?;
            let port = u16::try_from(e.port)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| invalid(format!("port: {} is not a port", e.port)))?;
            endpoints.push(Registered {
                service,
                address,
                port,
            });
        }
        let mut regs = self.lock();
        let held: usize = regs
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
        regs.insert(
            id,
            Registration {
                identity: identity.clone(),
                endpoints,
            },
        );
        self.publish(&regs);
        Ok(id)
    }

    pub fn remove(&self, id: u64) {
        let mut regs = self.lock();
        if regs.remove(&id).is_some() {
            self.publish(&regs);
        }
    }

    pub fn endpoint_count(&self) -> usize {
        self.lock().values().map(|r| r.endpoints.len()).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Registration>> {
        self.registrations.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, regs: &HashMap<u64, Registration>) {
        let mut table = EndpointTable::new();
        let mut ids: Vec<&u64> = regs.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let r = &regs[id];
            for e in &r.endpoints {
                table
                    .entry((e.service.namespace.clone(), e.service.name.clone()))
                    .or_default()
                    .push(v1::Endpoint {
                        address: e.address.to_string(),
                        port: u32::from(e.port),
                        identity: r.identity.to_string(),
                    });
            }
        }
        self.hub.set_endpoints(table);
    }
}
