//! [`KubeEndpoints`]: the endpoints of the cluster's services, as an [`EndpointSource`]:
//! EndpointSlices give each service's ready addresses and ports and the Pod behind each; the
//! Pod gives the ServiceAccount, which is the identity the server must present. Workloads in
//! the cluster need no Register stream; registrations of workloads outside it merge beside.
//!
//! - An endpoint counts when its slice belongs to a Service that exists (the slice's
//!   `kubernetes.io/service-name` label), it is not marked not-ready, and its `targetRef` is a
//!   Pod of the slice's namespace that the control has seen (without the Pod there is no
//!   identity to bind it to).
//! - Every port of the slice is an endpoint, except when one is named `smi-mesh`: then only
//!   that one (a Service that also exposes a port the mesh does not serve).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use smi_core::{ServiceAccount, ServiceRef};
use tokio::sync::{Notify, watch};

use super::watched::{Watched, debounced};
use crate::hub::{Endpoint, EndpointSink};
use crate::traits::EndpointSource;

/// The label that names an EndpointSlice's Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The port name that marks the one port the mesh serves.
pub const MESH_PORT_NAME: &str = "smi-mesh";
/// How long the first lists may take before views stop saying `endpoints_partial` anyway.
const FIRST_LIST: Duration = Duration::from_secs(30);

pub struct KubeEndpoints {
    client: kube::Client,
    trust_domain: String,
    sink: EndpointSink,
}

impl std::fmt::Debug for KubeEndpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeEndpoints")
            .field("trust_domain", &self.trust_domain)
            .finish_non_exhaustive()
    }
}

struct Stores {
    services: Watched<Service>,
    slices: Watched<EndpointSlice>,
    pods: Watched<Pod>,
}

impl KubeEndpoints {
    pub fn new(client: kube::Client, trust_domain: &str, sink: EndpointSink) -> Self {
        Self {
            client,
            trust_domain: trust_domain.to_owned(),
            sink,
        }
    }

    /// Every service's endpoints from what the stores hold now.
    fn table(&self, stores: &Stores) -> HashMap<ServiceRef, Vec<Endpoint>> {
        let pods: HashMap<(String, String), Arc<Pod>> = stores
            .pods
            .store
            .state()
            .into_iter()
            .filter_map(|pod| {
                let key = (pod.metadata.namespace.clone()?, pod.metadata.name.clone()?);
                Some((key, pod))
            })
            .collect();
        let services: std::collections::HashSet<(String, String)> = stores
            .services
            .store
            .state()
            .iter()
            .filter_map(|s| Some((s.metadata.namespace.clone()?, s.metadata.name.clone()?)))
            .collect();
        let mut table: HashMap<ServiceRef, Vec<Endpoint>> = HashMap::new();
        let mut slices = stores.slices.store.state();
        // Slices in name order, so that the endpoints' order is the same on every control.
        slices.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        for slice in slices {
            let Some(namespace) = slice.metadata.namespace.clone() else {
                continue;
            };
            let Some(service) = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                .cloned()
            else {
                continue;
            };
            if !services.contains(&(namespace.clone(), service.clone())) {
                continue;
            }
            let ports = mesh_ports(&slice);
            let list = table
                .entry(ServiceRef::new(&namespace, &service))
                .or_default();
            for endpoint in slice.endpoints.iter().flatten() {
                if endpoint.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                    continue;
                }
                let Some(pod) = endpoint
                    .target_ref
                    .as_ref()
                    .filter(|r| r.kind.as_deref() == Some("Pod"))
                    // Only a pod of the slice's own namespace: a slice may not bind an
                    // address to the identity of a pod elsewhere.
                    .filter(|r| r.namespace.as_ref().is_none_or(|ns| *ns == namespace))
                    .and_then(|r| pods.get(&(namespace.clone(), r.name.clone()?)))
                else {
                    continue;
                };
                let Some(identity) = self.identity(pod) else {
                    continue;
                };
                for address in &endpoint.addresses {
                    let Ok(ip) = address.parse::<IpAddr>() else {
                        continue;
                    };
                    for port in &ports {
                        let endpoint = Endpoint {
                            address: SocketAddr::new(ip, *port),
                            identity: identity.clone(),
                        };
                        if !list.contains(&endpoint) {
                            list.push(endpoint);
                        }
                    }
                }
            }
        }
        table.retain(|_, list| !list.is_empty());
        table
    }

    /// The identity of a Pod: its ServiceAccount (`default` when it names none).
    fn identity(&self, pod: &Pod) -> Option<smi_core::SpiffeId> {
        let namespace = pod.metadata.namespace.as_deref()?;
        let account = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.as_deref())
            .unwrap_or("default");
        let account: ServiceAccount = format!("{namespace}/{account}").parse().ok()?;
        Some(account.spiffe_id(&self.trust_domain))
    }
}

/// The ports of a slice the mesh serves: the one named [`MESH_PORT_NAME`], else every one.
fn mesh_ports(slice: &EndpointSlice) -> Vec<u16> {
    let ports = slice.ports.as_deref().unwrap_or_default();
    let port = |p: &k8s_openapi::api::discovery::v1::EndpointPort| {
        p.port.and_then(|n| u16::try_from(n).ok())
    };
    let named: Vec<u16> = ports
        .iter()
        .filter(|p| p.name.as_deref() == Some(MESH_PORT_NAME))
        .filter_map(port)
        .collect();
    if named.is_empty() {
        ports.iter().filter_map(port).collect()
    } else {
        named
    }
}

impl EndpointSource for KubeEndpoints {
    /// Watches the three kinds; synced once each has been listed whole.
    fn run(self: Arc<Self>, mut stopping: watch::Receiver<bool>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let notify = Arc::new(Notify::new());
            let stores = Arc::new(Stores {
                services: Watched::start(
                    Api::all(self.client.clone()),
                    "Services".into(),
                    notify.clone(),
                ),
                slices: Watched::start(
                    Api::all(self.client.clone()),
                    "EndpointSlices".into(),
                    notify.clone(),
                ),
                pods: Watched::start(Api::all(self.client.clone()), "Pods".into(), notify.clone()),
            });
            let ready = async {
                stores.services.ready(FIRST_LIST).await?;
                stores.slices.ready(FIRST_LIST).await?;
                stores.pods.ready(FIRST_LIST).await
            };
            tokio::select! {
                result = ready => {
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "Kubernetes endpoints not listed at start; serving what arrives");
                    }
                }
                _ = stopping.wait_for(|stop| *stop) => return,
            }
            self.sink.replace(self.table(&stores));
            self.sink.synced();
            let refresh = {
                let (this, stores) = (self.clone(), stores.clone());
                debounced(notify, move || {
                    this.sink.replace(this.table(&stores));
                })
            };
            let _ = stopping.wait_for(|stop| *stop).await;
            refresh.abort();
        })
    }
}
