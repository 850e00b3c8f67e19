//! Model <-> protobuf. Model to wire cannot fail; wire to model is checked as strictly as the
//! file loader checks YAML, so a workload rejects (and NACKs) an update it cannot trust.

use std::sync::Arc;

use super::v1;
use crate::identity::ServiceAccount;
use crate::model::{
    Backend, HttpMatch, HttpRouteGroup, L4Protocol, L4Route, Meta, Method, MethodSet, Origin,
    PolicySet, RouteKind, Rule, TrafficSplit, TrafficTarget,
};

/// A policy update that does not convert into the model.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{resource}: {field}: {message}")]
pub struct WireError {
    pub resource: String,
    pub field: String,
    pub message: String,
}

fn wire_error(resource: &str, field: &str, message: impl Into<String>) -> WireError {
    WireError {
        resource: resource.to_owned(),
        field: field.to_owned(),
        message: message.into(),
    }
}

// === model -> wire ===

impl From<&Meta> for v1::Meta {
    fn from(m: &Meta) -> Self {
        v1::Meta {
            namespace: m.namespace.clone(),
            name: m.name.clone(),
            api_version: m.api_version.clone(),
            source: m.origin.source.to_string(),
            document: u32::try_from(m.origin.document).unwrap_or(u32::MAX),
        }
    }
}

impl From<&ServiceAccount> for v1::ServiceAccount {
    fn from(a: &ServiceAccount) -> Self {
        v1::ServiceAccount {
            namespace: a.namespace.clone(),
            name: a.name.clone(),
        }
    }
}

fn kind_to_wire(kind: RouteKind) -> i32 {
    match kind {
        RouteKind::Http => v1::RouteKind::Http as i32,
        RouteKind::Tcp => v1::RouteKind::Tcp as i32,
        RouteKind::Udp => v1::RouteKind::Udp as i32,
    }
}

impl From<&TrafficTarget> for v1::TrafficTarget {
    fn from(t: &TrafficTarget) -> Self {
        v1::TrafficTarget {
            meta: Some((&t.meta).into()),
            destination: Some((&t.destination).into()),
            destination_port: t.destination_port.map(u32::from),
            sources: t.sources.iter().map(Into::into).collect(),
            rules: t
                .rules
                .iter()
                .map(|r| v1::Rule {
                    kind: kind_to_wire(r.kind),
                    name: r.name.clone(),
                    matches: r.matches.as_ref().map(|names| v1::MatchNames {
                        names: names.clone(),
                    }),
                })
                .collect(),
        }
    }
}

impl From<&HttpRouteGroup> for v1::HttpRouteGroup {
    fn from(g: &HttpRouteGroup) -> Self {
        v1::HttpRouteGroup {
            meta: Some((&g.meta).into()),
            matches: g
                .matches
                .iter()
                .map(|m| v1::HttpMatch {
                    name: m.name.clone(),
                    path_regex: m.path_regex.clone(),
                    methods: methods_to_wire(m.methods),
                    headers: m
                        .headers
                        .iter()
                        .map(|(name, value)| v1::HeaderMatch {
                            name: name.clone(),
                            value_regex: value.clone(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

fn methods_to_wire(methods: MethodSet) -> Vec<String> {
    if methods.is_any() {
        return vec!["*".to_owned()];
    }
    Method::ALL
        .iter()
        .filter(|m| methods.admits(m.as_str()))
        .map(|m| m.as_str().to_owned())
        .collect()
}

impl From<&L4Route> for v1::L4Route {
    fn from(r: &L4Route) -> Self {
        v1::L4Route {
            meta: Some((&r.meta).into()),
            protocol: kind_to_wire(r.protocol.route_kind()),
            ports: r.ports.iter().map(|&p| u32::from(p)).collect(),
        }
    }
}

impl From<&TrafficSplit> for v1::TrafficSplit {
    fn from(s: &TrafficSplit) -> Self {
        v1::TrafficSplit {
            meta: Some((&s.meta).into()),
            service: s.service.clone(),
            backends: s
                .backends
                .iter()
                .map(|b| v1::Backend {
                    service: b.service.clone(),
                    weight: b.weight,
                })
                .collect(),
            matches: s.matches.clone(),
        }
    }
}

impl From<&PolicySet> for v1::Policy {
    fn from(p: &PolicySet) -> Self {
        v1::Policy {
            traffic_targets: p.targets.iter().map(Into::into).collect(),
            http_route_groups: p.route_groups.iter().map(Into::into).collect(),
            l4_routes: p.l4_routes.iter().map(Into::into).collect(),
            traffic_splits: p.splits.iter().map(Into::into).collect(),
        }
    }
}

// === wire -> model ===

fn meta(m: Option<v1::Meta>, kind: &str) -> Result<Meta, WireError> {
    let m = m.ok_or_else(|| wire_error(kind, "meta", "missing"))?;
    if m.name.is_empty() || m.namespace.is_empty() {
        return Err(wire_error(kind, "meta", "name and namespace are required"));
    }
    Ok(Meta {
        namespace: m.namespace,
        name: m.name,
        api_version: m.api_version,
        origin: Origin {
            source: Arc::from(m.source.as_str()),
            document: m.document as usize,
        },
    })
}

fn account(
    a: Option<v1::ServiceAccount>,
    id: &str,
    field: &str,
) -> Result<ServiceAccount, WireError> {
    let a = a.ok_or_else(|| wire_error(id, field, "missing"))?;
    if a.name.is_empty() || a.namespace.is_empty() {
        return Err(wire_error(id, field, "name and namespace are required"));
    }
    Ok(ServiceAccount::new(a.namespace, a.name))
}

fn port(p: u32, id: &str, field: &str) -> Result<u16, WireError> {
    u16::try_from(p)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| wire_error(id, field, format!("{p} is not a port")))
}

fn kind_from_wire(kind: i32, id: &str, field: &str) -> Result<RouteKind, WireError> {
    match v1::RouteKind::try_from(kind) {
        Ok(v1::RouteKind::Http) => Ok(RouteKind::Http),
        Ok(v1::RouteKind::Tcp) => Ok(RouteKind::Tcp),
        Ok(v1::RouteKind::Udp) => Ok(RouteKind::Udp),
        _ => Err(wire_error(id, field, format!("unknown route kind {kind}"))),
    }
}

fn check_regex(pattern: &str, id: &str, field: &str) -> Result<(), WireError> {
    regex::Regex::new(pattern)
        .map(drop)
        .map_err(|e| wire_error(id, field, format!("invalid regex {pattern:?}: {e}")))
}

impl TryFrom<v1::TrafficTarget> for TrafficTarget {
    type Error = WireError;

    fn try_from(t: v1::TrafficTarget) -> Result<Self, WireError> {
        let meta = meta(t.meta, "TrafficTarget")?;
        let id = format!("TrafficTarget {}/{}", meta.namespace, meta.name);
        let destination = account(t.destination, &id, "destination")?;
        let destination_port = t
            .destination_port
            .map(|p| port(p, &id, "destination_port"))
            .transpose()?;
        let sources = t
            .sources
            .into_iter()
            .enumerate()
            .map(|(i, s)| account(Some(s), &id, &format!("sources[{i}]")))
            .collect::<Result<_, _>>()?;
        let rules = t
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                Ok(Rule {
                    kind: kind_from_wire(r.kind, &id, &format!("rules[{i}].kind"))?,
                    name: r.name,
                    matches: r.matches.map(|m| m.names),
                })
            })
            .collect::<Result<_, WireError>>()?;
        Ok(TrafficTarget {
            meta,
            destination,
            destination_port,
            sources,
            rules,
        })
    }
}

impl TryFrom<v1::HttpRouteGroup> for HttpRouteGroup {
    type Error = WireError;

    fn try_from(g: v1::HttpRouteGroup) -> Result<Self, WireError> {
        let meta = meta(g.meta, "HTTPRouteGroup")?;
        let id = format!("HTTPRouteGroup {}/{}", meta.namespace, meta.name);
        let mut matches = Vec::with_capacity(g.matches.len());
        for (i, m) in g.matches.into_iter().enumerate() {
            let field = format!("matches[{i}]");
            if let Some(p) = &m.path_regex {
                check_regex(p, &id, &format!("{field}.path_regex"))?;
            }
            let mut methods = MethodSet::EMPTY;
            for name in &m.methods {
                methods = match (name.as_str(), Method::from_name(name)) {
                    ("*", _) => methods.with_any(),
                    (_, Some(method)) => methods.with(method),
                    _ => {
                        return Err(wire_error(
                            &id,
                            &format!("{field}.methods"),
                            format!("unknown method {name:?}"),
                        ));
                    }
                };
            }
            let mut headers = Vec::with_capacity(m.headers.len());
            for h in m.headers {
                if http::HeaderName::from_bytes(h.name.as_bytes()).is_err() {
                    return Err(wire_error(
                        &id,
                        &format!("{field}.headers"),
                        format!("invalid header name {:?}", h.name),
                    ));
                }
                check_regex(&h.value_regex, &id, &format!("{field}.headers.{}", h.name))?;
                headers.push((h.name.to_ascii_lowercase(), h.value_regex));
            }
            matches.push(HttpMatch {
                name: m.name,
                path_regex: m.path_regex,
                methods: if methods.is_empty() {
                    MethodSet::ANY
                } else {
                    methods
                },
                headers,
            });
        }
        Ok(HttpRouteGroup { meta, matches })
    }
}

impl TryFrom<v1::L4Route> for L4Route {
    type Error = WireError;

    fn try_from(r: v1::L4Route) -> Result<Self, WireError> {
        let meta = meta(r.meta, "L4Route")?;
        let id = format!("L4Route {}/{}", meta.namespace, meta.name);
        let protocol = match kind_from_wire(r.protocol, &id, "protocol")? {
            RouteKind::Tcp => L4Protocol::Tcp,
            RouteKind::Udp => L4Protocol::Udp,
            RouteKind::Http => {
                return Err(wire_error(&id, "protocol", "an L4 route cannot be HTTP"));
            }
        };
        let mut ports = r
            .ports
            .iter()
            .map(|&p| port(p, &id, "ports"))
            .collect::<Result<Vec<_>, _>>()?;
        ports.sort_unstable();
        ports.dedup();
        Ok(L4Route {
            meta,
            protocol,
            ports,
        })
    }
}

impl TryFrom<v1::TrafficSplit> for TrafficSplit {
    type Error = WireError;

    fn try_from(s: v1::TrafficSplit) -> Result<Self, WireError> {
        let meta = meta(s.meta, "TrafficSplit")?;
        if s.service.is_empty() {
            let id = format!("TrafficSplit {}/{}", meta.namespace, meta.name);
            return Err(wire_error(&id, "service", "missing"));
        }
        Ok(TrafficSplit {
            meta,
            service: s.service,
            backends: s
                .backends
                .into_iter()
                .map(|b| Backend {
                    service: b.service,
                    weight: b.weight,
                })
                .collect(),
            matches: s.matches,
        })
    }
}

impl TryFrom<v1::Policy> for PolicySet {
    type Error = WireError;

    fn try_from(p: v1::Policy) -> Result<Self, WireError> {
        Ok(PolicySet {
            targets: p
                .traffic_targets
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            route_groups: p
                .http_route_groups
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            l4_routes: p
                .l4_routes
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            splits: p
                .traffic_splits
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Format, load_str};

    #[test]
    fn a_loaded_policy_survives_the_wire_unchanged() {
        let text = include_str!("../../../../examples/bookstore/policy/bookstore-access.yaml")
            .to_owned()
            + "\n---\n"
            + include_str!("../../../../examples/bookstore/policy/bookstore-split.yaml")
            + "\n---\napiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {name: db, namespace: x}\nspec: {matches: {ports: [5432, 5433]}}\n"
            + "---\napiVersion: access.smi-spec.io/v1alpha2\nkind: TrafficTarget\nmetadata: {name: t, namespace: x}\nspec:\n  destination: {kind: ServiceAccount, name: db, port: 5432}\n  sources: [{kind: ServiceAccount, name: app}]\n  rules: [{kind: TCPRoute, name: db}, {kind: HTTPRouteGroup, name: g, matches: []}]\n";
        let loaded = load_str("p.yaml", &text, Format::Yaml);
        assert!(loaded.is_valid(), "{:?}", loaded.diagnostics);
        let wire = v1::Policy::from(&loaded.policy);
        let back = PolicySet::try_from(wire).unwrap();
        assert_eq!(back, loaded.policy);
    }

    #[test]
    fn an_invalid_regex_on_the_wire_is_refused_with_its_place() {
        let group = v1::HttpRouteGroup {
            meta: Some(v1::Meta {
                namespace: "ns".into(),
                name: "g".into(),
                ..Default::default()
            }),
            matches: vec![v1::HttpMatch {
                name: "m".into(),
                path_regex: Some("(".into()),
                ..Default::default()
            }],
        };
        let err = HttpRouteGroup::try_from(group).unwrap_err();
        assert_eq!(err.resource, "HTTPRouteGroup ns/g");
        assert_eq!(err.field, "matches[0].path_regex");
    }
}
