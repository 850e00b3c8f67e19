//! TrafficTarget (access.smi-spec.io v1alpha1-v1alpha3) into [`TrafficTarget`].

use serde_json::Value;

use super::diagnostic::Reporter;
use super::document::Version;
use super::names;
use super::wire::{self, RuleRef, Subject, TargetBody, TrafficTargetDoc};
use crate::identity::{NameKind, ServiceAccount};
use crate::model::{Meta, RouteKind, Rule, TrafficTarget};

pub(crate) fn read_traffic_target(
    value: &Value,
    version: Version,
    meta: Meta,
    r: &mut Reporter<'_>,
) -> Option<TrafficTarget> {
    let doc: TrafficTargetDoc = wire::parse(value, r)?;
    // v1alpha1 has no `spec`: the body and the rule list (`specs`) sit at the top level.
    let (body, prefix, rules_field) = if version == Version::V1Alpha1 {
        let body = TargetBody {
            destination: doc.destination,
            sources: doc.sources,
            rules: doc.specs,
        };
        (body, "", "specs")
    } else {
        match doc.spec {
            Some(spec) => (spec, "spec.", "rules"),
            None => {
                r.error("spec".to_owned(), "missing");
                return None;
            }
        }
    };
    let strict = version >= Version::V1Alpha3;

    let Some(destination) = body.destination else {
        r.error(format!("{prefix}destination"), "missing");
        return None;
    };
    let field = format!("{prefix}destination");
    let dest = subject(&destination, &meta, &field, r)?;
    if dest.namespace != meta.namespace {
        // As OSM's admission webhook does: a target may only open workloads of its own namespace.
        r.error(
            format!("{field}.namespace"),
            format!(
                "{:?} differs from the TrafficTarget's namespace {:?}; a TrafficTarget can only grant access to its own namespace",
                dest.namespace, meta.namespace
            ),
        );
        return None;
    }
    let destination_port = destination_port(&destination, version, &field, r)?;

    let sources = body.sources.unwrap_or_default();
    if sources.is_empty() {
        if strict {
            r.error(
                format!("{prefix}sources"),
                "at least one source is required in v1alpha3",
            );
            return None;
        }
        r.warn(
            format!("{prefix}sources"),
            "no sources: this TrafficTarget grants nothing",
        );
    }
    let mut accounts = Vec::with_capacity(sources.len());
    for (i, s) in sources.iter().enumerate() {
        accounts.push(subject(s, &meta, &format!("{prefix}sources[{i}]"), r)?);
    }

    let rule_refs = body.rules.unwrap_or_default();
    if rule_refs.is_empty() {
        if strict {
            r.error(
                format!("{prefix}{rules_field}"),
                "at least one rule is required in v1alpha3",
            );
            return None;
        }
        r.warn(
            format!("{prefix}{rules_field}"),
            "no rules: this TrafficTarget grants nothing",
        );
    }
    let mut rules = Vec::with_capacity(rule_refs.len());
    for (i, rule_ref) in rule_refs.iter().enumerate() {
        rules.push(rule(rule_ref, &format!("{prefix}{rules_field}[{i}]"), r)?);
    }

    Some(TrafficTarget {
        meta,
        destination: dest,
        destination_port,
        sources: accounts,
        rules,
    })
}

fn subject(s: &Subject, meta: &Meta, field: &str, r: &mut Reporter<'_>) -> Option<ServiceAccount> {
    match s.kind.as_deref() {
        Some("ServiceAccount") => {}
        Some(other) => {
            r.error(
                format!("{field}.kind"),
                format!(
                    "unsupported subject kind {other:?}; only ServiceAccount is defined by SMI"
                ),
            );
            return None;
        }
        None => {
            r.error(format!("{field}.kind"), "missing (expected ServiceAccount)");
            return None;
        }
    }
    let Some(name) = s.name.as_deref().filter(|n| !n.is_empty()) else {
        r.error(format!("{field}.name"), "missing");
        return None;
    };
    // SMI leaves an omitted namespace undefined; the TrafficTarget's own is the safe reading.
    let namespace = s
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(&meta.namespace);
    let name_ok = names::check(name, NameKind::Subdomain, || format!("{field}.name"), r);
    let namespace_ok = names::check(
        namespace,
        NameKind::Label,
        || format!("{field}.namespace"),
        r,
    );
    (name_ok && namespace_ok).then(|| ServiceAccount::new(namespace, name))
}

fn destination_port(
    destination: &Subject,
    version: Version,
    field: &str,
    r: &mut Reporter<'_>,
) -> Option<Option<u16>> {
    let Some(port) = destination.port.as_ref().filter(|p| !p.is_null()) else {
        return Some(None);
    };
    if version >= Version::V1Alpha3 {
        r.warn(
            format!("{field}.port"),
            "removed in access v1alpha3 and ignored; restrict ports with a TCPRoute rule",
        );
        return Some(None);
    }
    match port_value(port) {
        Ok(p) => Some(Some(p)),
        Err(message) => {
            r.error(format!("{field}.port"), message);
            None
        }
    }
}

/// A port given as a number or a numeric string, 1-65535.
pub(crate) fn port_value(value: &Value) -> Result<u16, String> {
    let n = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match n {
        Some(n @ 1..=65535) => Ok(n as u16),
        _ => Err(format!("{value} is not a port (1-65535)")),
    }
}

fn rule(rule_ref: &RuleRef, field: &str, r: &mut Reporter<'_>) -> Option<Rule> {
    let kind = match rule_ref.kind.as_deref() {
        Some("HTTPRouteGroup") => RouteKind::Http,
        Some("TCPRoute") => RouteKind::Tcp,
        Some("UDPRoute") => RouteKind::Udp,
        Some(other) => {
            r.error(
                format!("{field}.kind"),
                format!(
                    "unknown rule kind {other:?}; expected HTTPRouteGroup, TCPRoute or UDPRoute"
                ),
            );
            return None;
        }
        None => {
            r.error(format!("{field}.kind"), "missing");
            return None;
        }
    };
    let Some(name) = rule_ref.name.as_deref().filter(|n| !n.is_empty()) else {
        r.error(format!("{field}.name"), "missing");
        return None;
    };
    if kind != RouteKind::Http && rule_ref.matches.is_some() {
        r.warn(
            format!("{field}.matches"),
            format!("ignored: {kind} has no named matches"),
        );
    }
    Some(Rule {
        kind,
        name: name.to_owned(),
        matches: rule_ref.matches.clone().filter(|_| kind == RouteKind::Http),
    })
}
