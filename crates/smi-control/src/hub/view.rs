//! One workload's view of a published state: the part of the mesh it needs, as domain types
//! borrowed from the [`Published`] (the API turns it into a protobuf message, in
//! [`crate::wire`]).

use std::collections::HashSet;

use rustls::pki_types::CertificateDer;
use smi_core::model::{
    HttpRouteGroup, L4Protocol, L4Route, RouteKind, TrafficSplit, TrafficTarget,
};
use smi_core::{ServiceAccount, ServiceRef, SpiffeId};

use super::{Endpoint, Published};

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

/// The part of one published state a workload receives.
#[derive(Clone, Debug, PartialEq)]
pub struct View<'a> {
    pub version: u64,
    /// The TrafficTargets whose destination is the workload (its inbound authorization).
    pub targets: Vec<&'a TrafficTarget>,
    /// The route groups those targets and the splits' `matches` name.
    pub route_groups: Vec<&'a HttpRouteGroup>,
    pub l4_routes: Vec<&'a L4Route>,
    /// The splits of the services it calls, and those whose backends it serves.
    pub splits: Vec<&'a TrafficSplit>,
    /// The endpoints of the services it calls and of their backends, by service.
    pub endpoints: Vec<ServiceEndpoints<'a>>,
    pub bundle: &'a [CertificateDer<'static>],
    pub revoked: &'a [SpiffeId],
    pub permissive: bool,
    pub endpoints_partial: bool,
}

/// One service's endpoints in a view (empty when none are known).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEndpoints<'a> {
    pub service: ServiceRef,
    pub endpoints: &'a [Endpoint],
}

impl Published {
    /// The part of the mesh one workload needs.
    pub fn view(&self, sub: &Subscription) -> View<'_> {
        let p = &*self.policy;
        let ix = &*self.index;
        let mut targets = Vec::new();
        let mut groups: HashSet<usize> = HashSet::new();
        let mut l4: HashSet<usize> = HashSet::new();
        let mut splits: HashSet<usize> = HashSet::new();
        let mut endpoint_keys: HashSet<ServiceRef> = HashSet::new();

        for &i in ix
            .targets_by_destination
            .get(&sub.identity)
            .into_iter()
            .flatten()
        {
            let t = &p.targets[i];
            targets.push(t);
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
                        endpoint_keys.insert(ServiceRef::new(&svc.namespace, &b.service));
                    }
                }
                endpoint_keys.insert(svc.clone());
            }
        }
        for &i in &splits {
            let s = &p.splits[i];
            for m in &s.matches {
                groups.extend(ix.groups.get(&(s.meta.namespace.clone(), m.clone())));
            }
        }

        let mut endpoints: Vec<ServiceEndpoints<'_>> = endpoint_keys
            .into_iter()
            .map(|service| ServiceEndpoints {
                endpoints: self.endpoints.get(&service).map_or(&[], |e| &**e),
                service,
            })
            .collect();
        endpoints.sort_unstable_by(|a, b| a.service.cmp(&b.service));

        View {
            version: self.version,
            targets,
            route_groups: sorted(groups).map(|i| &p.route_groups[i]).collect(),
            l4_routes: sorted(l4).map(|i| &p.l4_routes[i]).collect(),
            splits: sorted(splits).map(|i| &p.splits[i]).collect(),
            endpoints,
            bundle: &self.bundle,
            revoked: &self.revoked,
            permissive: self.permissive,
            endpoints_partial: self.endpoints_partial,
        }
    }
}

/// Indices in ascending order: views list resources in the order the policy holds them.
fn sorted(indices: HashSet<usize>) -> impl Iterator<Item = usize> {
    let mut indices: Vec<usize> = indices.into_iter().collect();
    indices.sort_unstable();
    indices.into_iter()
}
