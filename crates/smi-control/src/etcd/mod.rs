//! The control's state and policy in etcd, shared by every replica: `smi-control serve --etcd`.
//!
//! One [`Etcd`] per process holds the client, the runtime it runs on, and the [`Mirror`]: a
//! copy of everything under the prefix, kept by one watch. From it come the parts the
//! [`ControlBuilder`](crate::serve::ControlBuilder) takes:
//!
//! - [`EtcdStore`] ([`StateStore`](crate::traits::StateStore)): the CA and the token key
//!   (sealed with the replicas' shared key, [`SealKey`]), the deny list, the token-use ledger.
//!   Versions are the mirror's revision: every replica publishes the same number for the same
//!   state.
//! - [`EtcdPolicy`] ([`PolicySource`](crate::traits::PolicySource)): one SMI resource per key.
//! - [`EtcdEndpoints`] ([`EndpointSource`](crate::traits::EndpointSource)): every replica's
//!   registrations, merged.
//! - [`LeasedRegistrations`]: where this replica's Register streams go, under a lease that
//!   expires when the replica dies.
//!
//! The keys are laid out in [`keys`].

mod client;
mod endpoints;
pub mod keys;
mod mirror;
mod policy;
mod registrations;
mod sealed;
mod store;
pub mod txn;

pub use client::{EtcdClient, EtcdError, EtcdTls, pb};
pub use endpoints::EtcdEndpoints;
pub use mirror::{Class, Entry, Mirror};
pub use policy::EtcdPolicy;
pub use registrations::LeasedRegistrations;
pub use sealed::SealKey;
pub use store::EtcdStore;

use std::sync::Arc;
use std::time::Duration;

use crate::store_runtime::StoreRuntime;

/// How to reach etcd, and where the control's keys are.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// Client URLs of the members (`http://10.0.0.1:2379`); requests go to one and move to the
    /// next when it fails.
    pub endpoints: Vec<String>,
    /// The prefix every key is under (default `/smi-mesh/`); several meshes can share a cluster.
    pub prefix: String,
    /// Client TLS to etcd, if the cluster requires it.
    pub tls: Option<EtcdTls>,
    /// How long one request may take, over every member it tries.
    pub request_timeout: Duration,
}

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "/smi-mesh/";

impl EtcdConfig {
    pub fn new(endpoints: Vec<String>) -> Self {
        Self {
            endpoints,
            prefix: DEFAULT_PREFIX.to_owned(),
            tls: None,
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// A connection to etcd and the mirror of the control's keys: what the etcd-backed parts are
/// made from. Cloning shares them.
#[derive(Clone, Debug)]
pub struct Etcd {
    runtime: Arc<StoreRuntime>,
    client: EtcdClient,
    mirror: Arc<Mirror>,
    seal: Option<Arc<SealKey>>,
}

impl Etcd {
    /// Connects, reads every key under the prefix (the mirror's first state) and starts
    /// watching. Fails when no member answers within the request timeout: a replica that has
    /// never seen the state has nothing to serve. Without `seal`, what is sealed (the CA, the
    /// token key) cannot be read or made: enough for `smictl apply` and `smictl revoke`.
    pub fn connect(config: EtcdConfig, seal: Option<SealKey>) -> Result<Self, EtcdError> {
        let runtime = Arc::new(StoreRuntime::new()?);
        let client = runtime.enter(|| EtcdClient::new(&config))?;
        let mirror = Mirror::start(&runtime, client.clone(), config.prefix.clone())?;
        Ok(Self {
            runtime,
            client,
            mirror,
            seal: seal.map(Arc::new),
        })
    }

    pub fn client(&self) -> &EtcdClient {
        &self.client
    }

    pub fn mirror(&self) -> &Arc<Mirror> {
        &self.mirror
    }

    pub fn runtime(&self) -> &Arc<StoreRuntime> {
        &self.runtime
    }

    pub fn store(&self) -> EtcdStore {
        EtcdStore::new(self.clone())
    }

    pub fn policy(&self) -> EtcdPolicy {
        EtcdPolicy::new(self.mirror.clone())
    }

    /// The key sealed values are opened with; an error naming `key` without one.
    pub fn seal_key(&self, key: &str) -> Result<&SealKey, crate::traits::StoreError> {
        self.seal
            .as_deref()
            .ok_or_else(|| crate::traits::StoreError::Invalid {
                path: format!("etcd:{key}").into(),
                message: "sealed: give the replicas' --seal-key file".into(),
            })
    }

    pub fn prefix(&self) -> &str {
        self.mirror.prefix()
    }
}
