//! Versioned policy distribution. Every change (policy, endpoints, trust bundle, revoked
//! identities) publishes a new
//! immutable [`Published`] on a `watch` channel; each subscriber computes its own view from the
//! latest one when it is ready to send. A slow subscriber therefore skips to the newest version
//! and never accumulates a backlog, and never delays anyone else.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use smi_core::model::{L4Protocol, PolicySet, RouteKind};
use smi_core::proto::v1;
use smi_core::{ServiceAccount, ServiceRef};
use tokio::sync::watch;

/// Endpoints by service (`namespace`, `name`).
pub type EndpointTable = HashMap<(String, String), Vec<v1::Endpoint>>;

/// Lookups built once per policy version, so that each subscriber's view costs only its share.
#[derive(Debug, Default)]
struct PolicyIndex {
    targets_by_destination: HashMap<ServiceAccount, Vec<usize>>,
    groups: HashMap<(String, String), usize>,
    l4: HashMap<(L4Protocol, String, String), usize>,
    splits_by_root: HashMap<(String, String), Vec<usize>>,
    splits_by_backend: HashMap<(String, String), Vec<usize>>,
}

impl PolicyIndex {
    fn build(p: &PolicySet) -> Self {
        let mut ix = PolicyIndex::default();
        for (i, t) in p.targets.iter().enumerate() {
            ix.targets_by_destination
                .entry(t.destination.clone())
                .or_default()
                .push(i);
        }
        for (i, g) in p.route_groups.iter().enumerate() {
            ix.groups
                .insert((g.meta.namespace.clone(), g.meta.name.clone()), i);
        }
        for (i, r) in p.l4_routes.iter().enumerate() {
            ix.l4.insert(
                (r.protocol, r.meta.namespace.clone(), r.meta.name.clone()),
                i,
            );
        }
        for (i, s) in p.splits.iter().enumerate() {
            let ns = s.meta.namespace.clone();
            ix.splits_by_root
                .entry((ns.clone(), s.service.clone()))
                .or_default()
                .push(i);
            for b in &s.backends {
                ix.splits_by_backend
                    .entry((ns.clone(), b.service.clone()))
                    .or_default()
                    .push(i);
            }
        }
        ix
    }
}

/// One published state of the mesh.
#[derive(Debug)]
pub struct Published {
    pub version: u64,
    pub policy: Arc<PolicySet>,
    index: Arc<PolicyIndex>,
    pub endpoints: Arc<EndpointTable>,
    pub bundle: Arc<Vec<Vec<u8>>>,
    /// Revoked identities (SPIFFE IDs, sorted): every view carries them, beside the bundle.
    pub revoked: Arc<Vec<String>>,
    pub permissive: bool,
    pub endpoints_partial: bool,
}

/// What a workload subscribed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub identity: ServiceAccount,
    /// Services its certificate lets it serve (it needs the splits they are backends of, so that
    /// it accepts requests addressed to the root service).
    pub serves: Vec<ServiceRef>,
    /// Services it calls; `all` for `*`.
    pub calls: Vec<ServiceRef>,
    pub all: bool,
}

impl Published {
    /// The part of the mesh one workload needs.
    pub fn view(&self, sub: &Subscription) -> v1::PolicyUpdate {
        let p = &*self.policy;
        let ix = &*self.index;
        let mut targets = Vec::new();
        let mut groups: HashSet<usize> = HashSet::new();
        let mut l4: HashSet<usize> = HashSet::new();
        let mut splits: HashSet<usize> = HashSet::new();
        let mut endpoint_keys: HashSet<(String, String)> = HashSet::new();

        for &i in ix
            .targets_by_destination
            .get(&sub.identity)
            .into_iter()
            .flatten()
        {
            let t = &p.targets[i];
            targets.push(v1::TrafficTarget::from(t));
            let ns = &t.meta.namespace;
            for rule in &t.rules {
                match rule.kind {
                    RouteKind::Http => {
                        groups.extend(ix.groups.get(&(ns.clone(), rule.name.clone())))
                    }
                    RouteKind::Tcp => {
                        l4.extend(ix.l4.get(&(L4Protocol::Tcp, ns.clone(), rule.name.clone())))
                    }
                    RouteKind::Udp => {
                        l4.extend(ix.l4.get(&(L4Protocol::Udp, ns.clone(), rule.name.clone())))
                    }
                }
            }
        }
        for svc in &sub.serves {
            splits.extend(
                ix.splits_by_backend
                    .get(&(svc.namespace.clone(), svc.name.clone()))
                    .into_iter()
                    .flatten(),
            );
        }
        if sub.all {
            splits.extend(0..p.splits.len());
            endpoint_keys.extend(self.endpoints.keys().cloned());
        } else {
            for svc in &sub.calls {
                let key = (svc.namespace.clone(), svc.name.clone());
                for &i in ix.splits_by_root.get(&key).into_iter().flatten() {
                    splits.insert(i);
                    for b in &p.splits[i].backends {
                        endpoint_keys.insert((svc.namespace.clone(), b.service.clone()));
                    }
                }
                endpoint_keys.insert(key);
            }
        }
        for &i in &splits {
            let s = &p.splits[i];
            for m in &s.matches {
                groups.extend(ix.groups.get(&(s.meta.namespace.clone(), m.clone())));
            }
        }

        let mut splits: Vec<usize> = splits.into_iter().collect();
        let mut groups: Vec<usize> = groups.into_iter().collect();
        let mut l4: Vec<usize> = l4.into_iter().collect();
        splits.sort_unstable();
        groups.sort_unstable();
        l4.sort_unstable();
        let mut endpoints: Vec<v1::ServiceEndpoints> = endpoint_keys
            .into_iter()
            .map(|(namespace, name)| {
                let endpoints = self
                    .endpoints
                    .get(&(namespace.clone(), name.clone()))
                    .cloned()
                    .unwrap_or_default();
                v1::ServiceEndpoints {
                    namespace,
                    name,
                    endpoints,
                }
            })
            .collect();
        endpoints.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));

        v1::PolicyUpdate {
            version: self.version,
            policy: Some(v1::Policy {
                traffic_targets: targets,
                http_route_groups: groups
                    .iter()
                    .map(|&i| (&p.route_groups[i]).into())
                    .collect(),
                l4_routes: l4.iter().map(|&i| (&p.l4_routes[i]).into()).collect(),
                traffic_splits: splits.iter().map(|&i| (&p.splits[i]).into()).collect(),
            }),
            endpoints,
            trust_bundle_der: self.bundle.to_vec(),
            revoked_identities: self.revoked.to_vec(),
            permissive: self.permissive,
            endpoints_partial: self.endpoints_partial,
            // Set by the Watch stream when it sends this view in chunks.
            continued: false,
        }
    }
}

#[derive(Debug)]
struct Current {
    version: u64,
    policy: Arc<PolicySet>,
    index: Arc<PolicyIndex>,
    endpoints: Arc<EndpointTable>,
    bundle: Arc<Vec<Vec<u8>>>,
    revoked: Arc<Vec<String>>,
    permissive: bool,
    endpoints_partial: bool,
}

/// Owns the current state and publishes each change.
#[derive(Debug)]
pub struct Hub {
    current: Mutex<Current>,
    tx: watch::Sender<Arc<Published>>,
}

impl Hub {
    pub fn new(permissive: bool) -> Arc<Self> {
        let current = Current {
            version: 1,
            policy: Arc::default(),
            index: Arc::default(),
            endpoints: Arc::default(),
            bundle: Arc::default(),
            revoked: Arc::default(),
            permissive,
            // A new registry knows nothing yet; see `endpoints_complete`.
            endpoints_partial: true,
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

    pub fn set_endpoints(&self, endpoints: EndpointTable) -> u64 {
        self.update(|c| c.endpoints = Arc::new(endpoints))
    }

    /// Declares the registry complete: every live server has had a lease to (re-)register.
    pub fn endpoints_complete(&self) -> u64 {
        self.update(|c| c.endpoints_partial = false)
    }

    pub fn set_bundle(&self, bundle: Vec<Vec<u8>>) -> u64 {
        self.update(|c| c.bundle = Arc::new(bundle))
    }

    /// Publishes the revoked identities (SPIFFE IDs, sorted) to every subscriber.
    pub fn set_revoked(&self, revoked: Vec<String>) -> u64 {
        self.update(|c| c.revoked = Arc::new(revoked))
    }

    fn update(&self, change: impl FnOnce(&mut Current)) -> u64 {
        // Poisoning cannot leave `Current` half-updated: every change is a field assignment.
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut current);
        current.version += 1;
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
        endpoints: c.endpoints.clone(),
        bundle: c.bundle.clone(),
        revoked: c.revoked.clone(),
        permissive: c.permissive,
        endpoints_partial: c.endpoints_partial,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smi_core::{Format, load_str};

    const POLICY: &str = include_str!("../../../examples/bookstore/policy/bookstore-access.yaml");
    const SPLIT: &str = include_str!("../../../examples/bookstore/policy/bookstore-split.yaml");

    fn subscription(ns: &str, sa: &str) -> Subscription {
        Subscription {
            identity: ServiceAccount::new(ns, sa),
            serves: Vec::new(),
            calls: Vec::new(),
            all: false,
        }
    }

    fn hub() -> Arc<Hub> {
        let hub = Hub::new(false);
        let text = format!("{POLICY}\n---\n{SPLIT}");
        let loaded = load_str("p.yaml", &text, Format::Yaml);
        hub.set_policy(Arc::new(loaded.policy));
        hub
    }

    #[test]
    fn a_destination_sees_its_targets_and_their_routes_only() {
        let hub = hub();
        let view = hub.latest().view(&subscription("bookstore", "bookstore"));
        let policy = view.policy.unwrap();
        assert_eq!(policy.traffic_targets.len(), 1);
        assert_eq!(policy.http_route_groups.len(), 1);
        let other = hub.latest().view(&subscription("bookthief", "bookthief"));
        assert!(other.policy.unwrap().traffic_targets.is_empty());
    }

    #[test]
    fn a_caller_sees_the_split_of_a_service_it_calls_and_the_backends_endpoints() {
        let hub = hub();
        let mut table = EndpointTable::new();
        table.insert(
            ("bookstore".into(), "bookstore-v1".into()),
            vec![v1::Endpoint {
                address: "127.0.0.1".into(),
                port: 1,
                identity: "spiffe://cluster.local/ns/bookstore/sa/bookstore".into(),
            }],
        );
        hub.set_endpoints(table);
        let view = hub.latest().view(&Subscription {
            calls: vec![ServiceRef::new("bookstore", "bookstore")],
            ..subscription("bookbuyer", "bookbuyer")
        });
        assert_eq!(view.policy.unwrap().traffic_splits.len(), 1);
        let names: Vec<_> = view
            .endpoints
            .iter()
            .map(|e| (e.name.as_str(), e.endpoints.len()))
            .collect();
        assert_eq!(
            names,
            vec![("bookstore", 0), ("bookstore-v1", 1), ("bookstore-v2", 0)]
        );
    }

    #[test]
    fn revoked_identities_reach_every_view() {
        let hub = hub();
        let revoked = vec!["spiffe://cluster.local/ns/bookthief/sa/bookthief".to_owned()];
        hub.set_revoked(revoked.clone());
        for (ns, sa) in [("bookstore", "bookstore"), ("bookthief", "bookthief")] {
            let view = hub.latest().view(&subscription(ns, sa));
            assert_eq!(view.revoked_identities, revoked, "{ns}/{sa}");
        }
    }

    #[test]
    fn every_change_bumps_the_version_and_reaches_subscribers() {
        let hub = hub();
        let mut rx = hub.subscribe();
        let before = rx.borrow_and_update().version;
        let v = hub.set_bundle(vec![vec![1]]);
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().version, v);
        assert!(v > before);
    }
}
