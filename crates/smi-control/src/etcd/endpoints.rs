//! Registrations in etcd: every replica writes what its Register streams announce under
//! `endpoints/<replica>/<namespace>/<service>` ([`LeasedRegistrations`](super::LeasedRegistrations)),
//! and every replica reads them all ([`EtcdEndpoints`]), so each serves every workload's view.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use smi_core::{ServiceRef, SpiffeId};
use tokio::sync::watch;

use super::mirror::{Class, Mirror};
use crate::hub::{Endpoint, EndpointSink};
use crate::traits::EndpointSource;

/// One endpoint as stored.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StoredEndpoint {
    pub address: SocketAddr,
    pub identity: String,
}

impl StoredEndpoint {
    pub fn from_endpoint(endpoint: &Endpoint) -> Self {
        Self {
            address: endpoint.address,
            identity: endpoint.identity.to_string(),
        }
    }
}

/// One service's endpoints being merged, and the address/identity pairs already in.
type Merging = (Vec<Endpoint>, HashSet<(SocketAddr, SpiffeId)>);

/// Every replica's registrations, merged per service: an [`EndpointSource`].
#[derive(Debug)]
pub struct EtcdEndpoints {
    mirror: Arc<Mirror>,
    sink: EndpointSink,
}

impl EtcdEndpoints {
    pub fn new(mirror: Arc<Mirror>, sink: EndpointSink) -> Self {
        Self { mirror, sink }
    }

    /// Every service's endpoints over every replica's key, in key order (the same on every
    /// replica), an address and identity once even when two replicas hold it (a workload that
    /// moved to another replica before its first one's lease ran out).
    fn merged(&self) -> HashMap<ServiceRef, Vec<Endpoint>> {
        let keys = self.mirror.keys();
        let mut merged: BTreeMap<ServiceRef, Merging> = BTreeMap::new();
        for (key, entry) in self.mirror.entries(&keys.endpoints_prefix()) {
            let Some((_, service)) = keys.parse_endpoints(&key) else {
                tracing::warn!(
                    key,
                    "not an endpoints key (endpoints/<replica>/<namespace>/<service>); ignored"
                );
                continue;
            };
            let stored: Vec<StoredEndpoint> = match serde_json::from_slice(&entry.value) {
                Ok(stored) => stored,
                Err(e) => {
                    tracing::warn!(key, error = %e, "unreadable endpoints; ignored");
                    continue;
                }
            };
            let (list, seen) = merged.entry(service).or_default();
            for endpoint in stored {
                let Ok(identity) = endpoint.identity.parse::<SpiffeId>() else {
                    tracing::warn!(
                        key,
                        identity = endpoint.identity,
                        "not a SPIFFE ID; endpoint ignored"
                    );
                    continue;
                };
                if seen.insert((endpoint.address, identity.clone())) {
                    list.push(Endpoint {
                        address: endpoint.address,
                        identity,
                    });
                }
            }
        }
        merged
            .into_iter()
            .map(|(service, (list, _))| (service, list))
            .collect()
    }

    /// Sets the services whose endpoints changed since the last call.
    fn refresh(&self) {
        self.sink.replace(self.merged());
    }
}

impl EndpointSource for EtcdEndpoints {
    /// Synced at once: the mirror has listed every replica's keys before the control starts.
    fn run(self: Arc<Self>, mut stopping: watch::Receiver<bool>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let refresh = {
                let this = self.clone();
                Arc::new(move || this.refresh())
            };
            let _listening = self.mirror.listen(Class::Endpoints, refresh);
            self.refresh();
            self.sink.synced();
            let _ = stopping.wait_for(|stop| *stop).await;
        })
    }
}
