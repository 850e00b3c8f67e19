//! What a workload knows of the mesh at one version: the compiled policy and the endpoints of
//! the services it calls. Immutable; a new update builds a new one.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use smi_core::model::PolicySet;
use smi_core::proto::v1;
use smi_core::{Options, Snapshot, SpiffeId};

// hashbrown's default hasher (foldhash) is several times faster than SipHash on these short
// keys, and every outbound request looks a service up. The keys are names from the policy, not
// attacker-chosen input.
type HashMap<K, V> = hashbrown::HashMap<K, V>;

/// One serving workload, and the identity it must present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub identity: SpiffeId,
}

/// The endpoints of one service, and its `namespace/name` made once (it labels the metrics of
/// every request sent to it).
#[derive(Clone, Debug)]
pub struct ServiceEndpoints {
    pub label: Arc<str>,
    pub endpoints: Arc<[Endpoint]>,
}

#[derive(Debug)]
pub struct PolicyState {
    pub version: u64,
    pub snapshot: Snapshot,
    /// namespace -> service -> endpoints (nested, so lookups by `&str` allocate nothing).
    pub(crate) endpoints: HashMap<String, HashMap<String, ServiceEndpoints>>,
    /// Whether the workload subscribed to every service (`calls: *`). With a list, every
    /// service on it is in the view (with no endpoints, if none are known), so a service the
    /// view lacks is one the workload does not call: waiting for it cannot help.
    pub(crate) subscribed_to_all: bool,
    /// namespace -> root service of a TrafficSplit -> `namespace/name`, made once (it labels
    /// the metrics of every request split).
    pub(crate) split_roots: HashMap<String, HashMap<String, Arc<str>>>,
}

/// The `namespace/name` labels of every TrafficSplit root in `snapshot`.
fn split_roots(snapshot: &Snapshot) -> HashMap<String, HashMap<String, Arc<str>>> {
    let mut roots: HashMap<String, HashMap<String, Arc<str>>> = HashMap::new();
    for split in &snapshot.policy().splits {
        let namespace = &split.meta.namespace;
        roots
            .entry(namespace.clone())
            .or_default()
            .entry(split.service.clone())
            .or_insert_with(|| format!("{namespace}/{}", split.service).into());
    }
    roots
}

impl PolicyState {
    /// Before the first update: nothing is allowed, nothing is known.
    pub(crate) fn empty(trust_domain: &str) -> Self {
        Self {
            version: 0,
            subscribed_to_all: true,
            snapshot: Snapshot::compile(
                PolicySet::default(),
                Options::default().trust_domain(trust_domain),
            ),
            endpoints: HashMap::new(),
            split_roots: HashMap::new(),
        }
    }

    /// Converts and compiles an update; an error names the resource and field, and nothing of
    /// the update is used.
    pub(crate) fn compile(update: &v1::PolicyUpdate, trust_domain: &str) -> Result<Self, String> {
        let policy = PolicySet::try_from(update.policy.clone().unwrap_or_default())
            .map_err(|e| e.to_string())?;
        let options = Options::default()
            .trust_domain(trust_domain)
            .permissive(update.permissive);
        let mut endpoints: HashMap<String, HashMap<String, ServiceEndpoints>> = HashMap::new();
        for service in &update.endpoints {
            let list = service
                .endpoints
                .iter()
                .map(|e| {
                    let field = || format!("endpoints {}/{}", service.namespace, service.name);
                    let ip: IpAddr = e
                        .address
                        .parse()
                        .map_err(|_| format!("{}: address {:?}", field(), e.address))?;
                    let port = u16::try_from(e.port)
                        .map_err(|_| format!("{}: port {}", field(), e.port))?;
                    let identity = e
                        .identity
                        .parse()
                        .map_err(|err| format!("{}: identity: {err}", field()))?;
                    Ok(Endpoint {
                        addr: SocketAddr::new(ip, port),
                        identity,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            let label = format!("{}/{}", service.namespace, service.name).into();
            endpoints
                .entry(service.namespace.clone())
                .or_default()
                .insert(
                    service.name.clone(),
                    ServiceEndpoints {
                        label,
                        endpoints: list.into(),
                    },
                );
        }
        let revoked = update
            .revoked_identities
            .iter()
            .enumerate()
            .map(|(i, id)| {
                id.parse::<SpiffeId>()
                    .map_err(|e| format!("revoked_identities[{i}] {id:?}: {e}"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let snapshot = Snapshot::compile(policy, options).with_revoked(&revoked);
        Ok(Self {
            version: update.version,
            split_roots: split_roots(&snapshot),
            snapshot,
            endpoints,
            subscribed_to_all: true,
        })
    }

    /// Keeps `previous` endpoints for services this state has none for. Used while the control
    /// says its endpoint lists are partial: a restarted control service knows no endpoints until
    /// their servers re-register, within one lease; after that its lists are authoritative.
    pub(crate) fn keep_endpoints_unknown_here(&mut self, previous: &PolicyState) {
        for (namespace, services) in &previous.endpoints {
            for (name, endpoints) in services {
                if endpoints.endpoints.is_empty() || !self.endpoints(namespace, name).is_empty() {
                    continue;
                }
                self.endpoints
                    .entry(namespace.clone())
                    .or_default()
                    .insert(name.clone(), endpoints.clone());
            }
        }
    }

    /// A state from a compiled snapshot and the endpoints of each service (`namespace/name`).
    #[cfg(feature = "test-util")]
    pub(crate) fn from_parts<'a>(
        version: u64,
        snapshot: Snapshot,
        services: impl IntoIterator<Item = (&'a str, &'a str, Vec<Endpoint>)>,
    ) -> Self {
        let mut endpoints: HashMap<String, HashMap<String, ServiceEndpoints>> = HashMap::new();
        for (namespace, name, list) in services {
            endpoints.entry(namespace.to_owned()).or_default().insert(
                name.to_owned(),
                ServiceEndpoints {
                    label: format!("{namespace}/{name}").into(),
                    endpoints: list.into(),
                },
            );
        }
        Self {
            version,
            split_roots: split_roots(&snapshot),
            snapshot,
            endpoints,
            subscribed_to_all: true,
        }
    }

    /// The service `namespace/name`, if the control told us about it (we subscribed to it).
    pub fn service(&self, namespace: &str, name: &str) -> Option<&ServiceEndpoints> {
        self.endpoints
            .get(namespace)
            .and_then(|by_name| by_name.get(name))
    }

    /// `namespace/name` of a TrafficSplit's root service, shared.
    pub fn split_root_label(&self, namespace: &str, name: &str) -> Option<&Arc<str>> {
        self.split_roots
            .get(namespace)
            .and_then(|by_name| by_name.get(name))
    }

    /// The endpoints of `namespace/name`; empty if none are known.
    pub fn endpoints(&self, namespace: &str, name: &str) -> &[Endpoint] {
        self.service(namespace, name).map_or(&[], |s| &s.endpoints)
    }

    /// Whether some service lists this endpoint, bound to this identity, and the identity is
    /// not revoked.
    pub fn lists(&self, addr: SocketAddr, identity: &SpiffeId) -> bool {
        !self.snapshot.is_revoked(identity)
            && self
                .endpoints
                .values()
                .flat_map(|by_name| by_name.values())
                .any(|s| {
                    s.endpoints
                        .iter()
                        .any(|e| e.addr == addr && e.identity == *identity)
                })
    }

    /// Whether a service this view lacks may still arrive: before the first update, or when the
    /// workload subscribed to every service.
    pub fn may_learn_services(&self) -> bool {
        self.version == 0 || self.subscribed_to_all
    }

    /// Whether the control told us about this service at all (we subscribed to it).
    pub fn knows(&self, namespace: &str, name: &str) -> bool {
        self.service(namespace, name).is_some()
    }
}
