//! Versioned distribution. Every change (policy, endpoints, trust bundle, revoked identities)
//! publishes a new immutable [`Published`] on a `watch` channel; each subscriber computes its
//! own [`View`] from the latest one when it is ready to send. A slow subscriber therefore skips
//! to the newest version and never accumulates a backlog, and never delays anyone else.
//!
//! Everything here is a domain type (the model, [`ServiceRef`](smi_core::ServiceRef),
//! [`SpiffeId`], [`Endpoint`]); protobuf appears only at the API edge ([`crate::wire`]).

mod endpoints;
mod index;
mod versions;
mod view;

pub use endpoints::{Endpoint, EndpointSink, EndpointTable};
pub use versions::{BLOCK as VERSION_BLOCK, Versions};
pub use view::{ServiceEndpoints, Subscription, View};

use std::cmp::Ordering;
use std::sync::{Arc, Mutex};

use rustls::pki_types::CertificateDer;
use smi_core::SpiffeId;
use smi_core::model::PolicySet;
use tokio::sync::watch;

use endpoints::Slots;
use index::PolicyIndex;

/// One published state of the mesh.
#[derive(Debug)]
pub struct Published {
    pub version: u64,
    pub policy: Arc<PolicySet>,
    index: Arc<PolicyIndex>,
    /// Every source's endpoints, merged, by service.
    pub endpoints: Arc<EndpointTable>,
    pub bundle: Arc<[CertificateDer<'static>]>,
    /// Revoked identities, in the order of their URIs: every view carries them, beside the
    /// bundle.
    pub revoked: Arc<[SpiffeId]>,
    pub permissive: bool,
    pub endpoints_partial: bool,
}

impl Published {
    pub fn is_revoked(&self, id: &SpiffeId) -> bool {
        self.revoked.binary_search_by(|r| uri_order(r, id)).is_ok()
    }

    /// Endpoints over every service.
    pub fn endpoint_count(&self) -> usize {
        self.endpoints.values().map(|e| e.len()).sum()
    }
}

#[derive(Debug)]
struct Current {
    versions: Versions,
    version: u64,
    policy: Arc<PolicySet>,
    index: Arc<PolicyIndex>,
    endpoints: Slots,
    bundle: Arc<[CertificateDer<'static>]>,
    revoked: Arc<[SpiffeId]>,
    permissive: bool,
}

/// Owns the current state and publishes each change.
#[derive(Debug)]
pub struct Hub {
    current: Mutex<Current>,
    tx: watch::Sender<Arc<Published>>,
}

impl Hub {
    /// A hub numbering its versions itself, from 1 (tests, tools).
    pub fn new(permissive: bool) -> Arc<Self> {
        Self::with_versions(permissive, Versions::local())
    }

    /// A hub whose version numbers come from `versions` (the state store's, in a control).
    pub fn with_versions(permissive: bool, mut versions: Versions) -> Arc<Self> {
        let current = Current {
            version: versions.take(),
            versions,
            policy: Arc::default(),
            index: Arc::default(),
            endpoints: Slots::default(),
            bundle: Arc::from([]),
            revoked: Arc::from([]),
            permissive,
        };
        let (tx, _) = watch::channel(Arc::new(published(&current)));
        Arc::new(Self {
            current: Mutex::new(current),
            tx,
        })
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Published>> {
        self.tx.subscribe()
    }

    pub fn latest(&self) -> Arc<Published> {
        self.tx.borrow().clone()
    }

    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }

    pub fn set_policy(&self, policy: Arc<PolicySet>) -> u64 {
        let index = Arc::new(PolicyIndex::build(&policy));
        self.update(|c| {
            c.policy = policy;
            c.index = index;
        })
    }

    pub fn set_bundle(&self, bundle: Vec<CertificateDer<'static>>) -> u64 {
        self.update(|c| c.bundle = bundle.into())
    }

    /// Publishes the revoked identities to every subscriber.
    pub fn set_revoked(&self, mut revoked: Vec<SpiffeId>) -> u64 {
        revoked.sort_unstable_by(uri_order);
        revoked.dedup();
        self.update(|c| c.revoked = revoked.into())
    }

    /// [`update`](Self::update) when `change` says it changed something; `None` otherwise.
    fn update_if(&self, change: impl FnOnce(&mut Current) -> bool) -> Option<u64> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if !change(&mut current) {
            return None;
        }
        current.version = current.versions.take();
        let version = current.version;
        self.tx.send_replace(Arc::new(published(&current)));
        Some(version)
    }

    fn update(&self, change: impl FnOnce(&mut Current)) -> u64 {
        // Poisoning cannot leave `Current` half-updated: every change is a field assignment or
        // one service's list.
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut current);
        current.version = current.versions.take();
        let version = current.version;
        self.tx.send_replace(Arc::new(published(&current)));
        version
    }
}

fn published(c: &Current) -> Published {
    Published {
        version: c.version,
        policy: c.policy.clone(),
        index: c.index.clone(),
        endpoints: c.endpoints.merged(),
        bundle: c.bundle.clone(),
        revoked: c.revoked.clone(),
        permissive: c.permissive,
        endpoints_partial: c.endpoints.partial(),
    }
}

/// SPIFFE IDs in the order of their URIs (`spiffe://td/ns/<ns>/sa/<sa>`), without making the
/// strings: the order workloads have always received revoked identities in.
pub fn uri_order(a: &SpiffeId, b: &SpiffeId) -> Ordering {
    uri_bytes(a).cmp(uri_bytes(b))
}

fn uri_bytes(id: &SpiffeId) -> impl Iterator<Item = u8> + '_ {
    [
        "spiffe://",
        id.trust_domain.as_str(),
        "/ns/",
        id.account.namespace.as_str(),
        "/sa/",
        id.account.name.as_str(),
    ]
    .into_iter()
    .flat_map(str::bytes)
}

#[cfg(test)]
mod tests;
