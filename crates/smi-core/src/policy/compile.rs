//! [`PolicySet`] -> [`Snapshot`]: resolve references, compile matches, build the indexes.

use std::collections::HashMap;
use std::sync::Arc;

use super::keys::{NameKey, NameSet, PairKey, ServiceMap};
use super::matcher::CompiledGroup;
use super::pattern::PatternCache;
use super::route::CompiledSplit;
use super::{Options, Snapshot};
use crate::load::{Diagnostic, ResourceId, Severity};
use crate::model::{L4Protocol, Meta, PolicySet, RouteKind, Rule, TrafficSplit, TrafficTarget};

/// Ports an L4 rule opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PortSet {
    Any,
    Only(Box<[u16]>),
    /// The rule names a route that does not exist: it grants nothing (fail closed).
    Nothing,
}

impl PortSet {
    /// `None` (no port given) is not restricted by a port list.
    pub fn allows(&self, port: Option<u16>) -> bool {
        match (self, port) {
            (PortSet::Any, _) => true,
            (PortSet::Only(_), None) => true,
            (PortSet::Only(ports), Some(p)) => ports.binary_search(&p).is_ok(),
            (PortSet::Nothing, _) => false,
        }
    }
}

#[derive(Debug)]
pub(crate) struct HttpRule {
    pub index: usize,
    /// `None` when the group does not exist (grants nothing).
    pub group: Option<Arc<CompiledGroup>>,
    /// Indices of the selected matches; `None` means every match of the group.
    pub selected: Option<Box<[u32]>>,
    /// What a permit by each match of the group says (its `Display`), made once: servers label
    /// the metrics of every request with it.
    pub labels: Box<[Arc<str>]>,
}

#[derive(Debug)]
pub(crate) struct L4Rule {
    pub index: usize,
    pub ports: PortSet,
    /// What a permit by this rule says (its `Display`), made once.
    pub label: Arc<str>,
}

#[derive(Debug)]
pub(crate) struct CompiledTarget {
    pub meta: Meta,
    pub rules: Box<[Rule]>,
    pub destination_port: Option<u16>,
    pub http: Box<[HttpRule]>,
    pub tcp: Box<[L4Rule]>,
    pub udp: Box<[L4Rule]>,
}

impl Snapshot {
    /// Compiles a policy. Never fails: problems that only show across resources (dangling
    /// references, competing splits) become warnings, and the affected rule grants nothing.
    pub fn compile(policy: impl Into<Arc<PolicySet>>, options: Options) -> Snapshot {
        let policy: Arc<PolicySet> = policy.into();
        let mut warnings = Vec::new();
        let mut cache = PatternCache::default();

        let groups: HashMap<(&str, &str), Arc<CompiledGroup>> = policy
            .route_groups
            .iter()
            .map(|g| {
                let key = (g.meta.namespace.as_str(), g.meta.name.as_str());
                (
                    key,
                    Arc::new(CompiledGroup::compile(g, options.path_match, &mut cache)),
                )
            })
            .collect();
        let l4: HashMap<(L4Protocol, &str, &str), &[u16]> = policy
            .l4_routes
            .iter()
            .map(|r| {
                (
                    (r.protocol, r.meta.namespace.as_str(), r.meta.name.as_str()),
                    r.ports.as_slice(),
                )
            })
            .collect();

        let mut targets = Vec::with_capacity(policy.targets.len());
        let mut pairs: HashMap<PairKey, Vec<u32>> = HashMap::new();
        let mut destinations = NameSet::default();
        for target in &policy.targets {
            let index = u32::try_from(targets.len()).unwrap_or(u32::MAX);
            targets.push(compile_target(target, &groups, &l4, &mut warnings));
            let dest = &target.destination;
            destinations.insert(NameKey::new(&dest.namespace, &dest.name));
            for source in &target.sources {
                let list = pairs.entry(PairKey::new(dest, source)).or_default();
                if list.last() != Some(&index) {
                    list.push(index);
                }
            }
        }
        let pairs = pairs
            .into_iter()
            .map(|(key, list)| (key, list.into_boxed_slice()))
            .collect();
        if !cache.failed.is_empty() {
            warnings.push(Diagnostic {
                severity: Severity::Warning,
                origin: None,
                resource: None,
                field: None,
                message: format!(
                    "{} pattern(s) exceed the regex size limit and match nothing: {}",
                    cache.failed.len(),
                    cache.failed.join(", ")
                ),
            });
        }

        let splits = compile_splits(&policy, &groups, &mut warnings);
        let mut matched_headers: Vec<http::HeaderName> = groups
            .values()
            .flat_map(|g| g.matches.iter().flat_map(|m| m.header_names()))
            .filter(|name| *name != http::header::HOST)
            .cloned()
            .collect();
        matched_headers.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        matched_headers.dedup();

        Snapshot {
            options,
            policy,
            targets: targets.into_boxed_slice(),
            destinations,
            pairs,
            splits,
            revoked: NameSet::default(),
            matched_headers: matched_headers.into_boxed_slice(),
            warnings,
        }
    }
}

fn warn(meta: &Meta, kind: &str, field: String, message: String) -> Diagnostic {
    Diagnostic {
        severity: Severity::Warning,
        origin: Some(meta.origin.clone()),
        resource: Some(ResourceId {
            kind: kind.to_owned(),
            namespace: Some(meta.namespace.clone()),
            name: Some(meta.name.clone()),
        }),
        field: Some(field),
        message,
    }
}

fn rules_field(target: &TrafficTarget) -> &'static str {
    if target.meta.api_version.ends_with("v1alpha1") {
        "specs"
    } else {
        "spec.rules"
    }
}

fn compile_target(
    target: &TrafficTarget,
    groups: &HashMap<(&str, &str), Arc<CompiledGroup>>,
    l4: &HashMap<(L4Protocol, &str, &str), &[u16]>,
    warnings: &mut Vec<Diagnostic>,
) -> CompiledTarget {
    let ns = target.meta.namespace.as_str();
    let mut http = Vec::new();
    let mut tcp = Vec::new();
    let mut udp = Vec::new();
    for (index, rule) in target.rules.iter().enumerate() {
        let field = format!("{}[{index}]", rules_field(target));
        let dangling = |what: &str| {
            warn(
                &target.meta,
                "TrafficTarget",
                format!("{field}.name"),
                format!(
                    "{what} {ns}/{} does not exist; this rule grants nothing",
                    rule.name
                ),
            )
        };
        match rule.kind {
            RouteKind::Http => {
                let group = groups.get(&(ns, rule.name.as_str())).cloned();
                if group.is_none() {
                    warnings.push(dangling("HTTPRouteGroup"));
                }
                let selected = rule.matches.as_ref().map(|names| {
                    let mut indices = Vec::new();
                    for name in names {
                        let Some(group) = &group else { break };
                        let before = indices.len();
                        indices.extend(
                            group
                                .matches
                                .iter()
                                .enumerate()
                                .filter(|(_, m)| *m.name == **name)
                                .map(|(i, _)| i as u32),
                        );
                        if indices.len() == before {
                            warnings.push(warn(
                                &target.meta,
                                "TrafficTarget",
                                format!("{field}.matches"),
                                format!(
                                    "HTTPRouteGroup {ns}/{} has no match named {name:?}; it grants nothing",
                                    rule.name
                                ),
                            ));
                        }
                    }
                    indices.into_boxed_slice()
                });
                let labels = group.as_ref().map_or_else(Default::default, |g| {
                    g.matches
                        .iter()
                        .map(|m| permit_label(&target.meta, index, rule, Some(&m.name)))
                        .collect()
                });
                http.push(HttpRule {
                    index,
                    group,
                    selected,
                    labels,
                });
            }
            RouteKind::Tcp | RouteKind::Udp => {
                let protocol = if rule.kind == RouteKind::Tcp {
                    L4Protocol::Tcp
                } else {
                    L4Protocol::Udp
                };
                let ports = match l4.get(&(protocol, ns, rule.name.as_str())) {
                    None => {
                        warnings.push(dangling(rule.kind.kind_name()));
                        PortSet::Nothing
                    }
                    Some([]) => PortSet::Any,
                    Some(ports) => PortSet::Only((*ports).into()),
                };
                let label = permit_label(&target.meta, index, rule, None);
                let rule = L4Rule {
                    index,
                    ports,
                    label,
                };
                if protocol == L4Protocol::Tcp {
                    tcp.push(rule);
                } else {
                    udp.push(rule);
                }
            }
        }
    }
    CompiledTarget {
        meta: target.meta.clone(),
        rules: target.rules.clone().into_boxed_slice(),
        destination_port: target.destination_port,
        http: http.into_boxed_slice(),
        tcp: tcp.into_boxed_slice(),
        udp: udp.into_boxed_slice(),
    }
}

/// The text of the permit granted by a target's rule (and match), shared by every permit.
fn permit_label(meta: &Meta, rule_index: usize, rule: &Rule, matched: Option<&str>) -> Arc<str> {
    super::authorize::granted_text(meta, rule_index, rule, matched).into()
}

fn compile_splits(
    policy: &PolicySet,
    groups: &HashMap<(&str, &str), Arc<CompiledGroup>>,
    warnings: &mut Vec<Diagnostic>,
) -> ServiceMap<CompiledSplit> {
    // Several splits for one root: the one with the smallest name wins, deterministically.
    let mut by_root: HashMap<(&str, &str), Vec<&TrafficSplit>> = HashMap::new();
    for split in &policy.splits {
        by_root
            .entry((split.meta.namespace.as_str(), split.service.as_str()))
            .or_default()
            .push(split);
    }
    let mut out = ServiceMap::with_capacity(by_root.len());
    for ((ns, root), mut splits) in by_root {
        splits.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
        let chosen = splits[0];
        for ignored in &splits[1..] {
            warnings.push(warn(
                &ignored.meta,
                "TrafficSplit",
                "spec.service".to_owned(),
                format!(
                    "TrafficSplit {ns}/{} also splits {root}; only one split per root service applies, and it is {} (smallest name)",
                    chosen.meta.name, chosen.meta.name
                ),
            ));
        }
        if chosen.backends.iter().all(|b| b.weight == 0) {
            warnings.push(warn(
                &chosen.meta,
                "TrafficSplit",
                "spec.backends".to_owned(),
                "no backend has a weight above 0; requests go to the root service itself"
                    .to_owned(),
            ));
        }
        let mut matches = Vec::with_capacity(chosen.matches.len());
        for (i, name) in chosen.matches.iter().enumerate() {
            match groups.get(&(ns, name.as_str())) {
                Some(g) => matches.push(g.clone()),
                None => warnings.push(warn(
                    &chosen.meta,
                    "TrafficSplit",
                    format!("spec.matches[{i}].name"),
                    format!("HTTPRouteGroup {ns}/{name} does not exist; it matches no request"),
                )),
            }
        }
        let matches = (!chosen.matches.is_empty()).then(|| matches.into_boxed_slice());
        out.insert(NameKey::new(ns, root), CompiledSplit::new(chosen, matches));
    }
    out
}
