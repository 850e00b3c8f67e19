//! Lookups built once per policy version, so that each subscriber's view costs only its share.

use std::collections::HashMap;

use smi_core::ServiceAccount;
use smi_core::model::{L4Protocol, PolicySet};

#[derive(Debug, Default)]
pub(crate) struct PolicyIndex {
    pub targets_by_destination: HashMap<ServiceAccount, Vec<usize>>,
    pub groups: HashMap<(String, String), usize>,
    pub l4: HashMap<(L4Protocol, String, String), usize>,
    pub splits_by_root: HashMap<(String, String), Vec<usize>>,
    pub splits_by_backend: HashMap<(String, String), Vec<usize>>,
}

impl PolicyIndex {
    pub fn build(p: &PolicySet) -> Self {
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
