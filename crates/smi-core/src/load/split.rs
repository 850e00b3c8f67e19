//! TrafficSplit (split.smi-spec.io v1alpha1-v1alpha4) into [`TrafficSplit`].

use serde_json::Value;

use super::diagnostic::Reporter;
use super::document::Version;
use super::names;
use super::quantity;
use super::wire::{self, TrafficSplitDoc};
use crate::identity::NameKind;
use crate::model::{Backend, Meta, TrafficSplit};

pub(crate) fn read_traffic_split(
    value: &Value,
    version: Version,
    meta: Meta,
    r: &mut Reporter<'_>,
) -> Option<TrafficSplit> {
    let doc: TrafficSplitDoc = wire::parse(value, r)?;
    let Some(spec) = doc.spec else {
        r.error("spec".to_owned(), "missing");
        return None;
    };
    let Some(service) = spec.service.as_deref().filter(|s| !s.is_empty()) else {
        r.error("spec.service".to_owned(), "missing");
        return None;
    };
    let service = root_service(service, &meta, r)?;

    let mut ok = true;
    let docs = spec.backends.unwrap_or_default();
    let mut backends = Vec::with_capacity(docs.len());
    for (i, b) in docs.iter().enumerate() {
        let field = format!("spec.backends[{i}]");
        let Some(name) = b.service.as_deref().filter(|s| !s.is_empty()) else {
            r.error(format!("{field}.service"), "missing");
            ok = false;
            continue;
        };
        if !names::check(name, NameKind::Label, || format!("{field}.service"), r) {
            ok = false;
            continue;
        }
        let weight = match b.weight.as_ref().filter(|w| !w.is_null()) {
            None => Err("missing".to_owned()),
            Some(w) if version == Version::V1Alpha1 => {
                quantity_weight(w).and_then(|m| bounded(m, w, "m"))
            }
            Some(w) => integer_weight(w).and_then(|v| bounded(v, w, "")),
        };
        match weight {
            Ok(weight) => backends.push(Backend {
                service: name.to_owned(),
                weight,
            }),
            Err(e) => {
                r.error(format!("{field}.weight"), e);
                ok = false;
            }
        }
    }

    let mut matches = Vec::new();
    for (i, m) in spec.matches.iter().flatten().enumerate() {
        let field = format!("spec.matches[{i}]");
        match m.kind.as_deref() {
            Some("HTTPRouteGroup") => {}
            other => {
                r.error(
                    format!("{field}.kind"),
                    match other {
                        Some(kind) => format!(
                            "{kind:?}: only HTTPRouteGroup can be matched by a TrafficSplit"
                        ),
                        None => "missing (expected HTTPRouteGroup)".to_owned(),
                    },
                );
                ok = false;
                continue;
            }
        }
        match m.name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => matches.push(name.to_owned()),
            None => {
                r.error(format!("{field}.name"), "missing");
                ok = false;
            }
        }
    }
    if !matches.is_empty() && version < Version::V1Alpha3 {
        r.warn(
            "spec.matches".to_owned(),
            format!(
                "matches are a split v1alpha3 field; ignored in {}",
                meta.api_version
            ),
        );
        matches.clear();
    }

    ok.then_some(TrafficSplit {
        meta,
        service,
        backends,
        matches,
    })
}

/// The spec calls `service` the FQDN clients use: accept `name`, `name.ns` and
/// `name.ns.svc[.cluster-domain]`, all in the split's namespace.
fn root_service(service: &str, meta: &Meta, r: &mut Reporter<'_>) -> Option<String> {
    let service = service.trim_end_matches('.');
    let mut labels = service.split('.');
    let name = labels.next().unwrap_or_default();
    if let Some(ns) = labels.next()
        && ns != meta.namespace
    {
        r.error(
                "spec.service".to_owned(),
                format!(
                    "{service:?} is in namespace {ns:?}, but a TrafficSplit's root service must be in its own namespace {:?}",
                    meta.namespace
                ),
            );
        return None;
    }
    names::check(name, NameKind::Label, || "spec.service".to_owned(), r).then(|| name.to_owned())
}

/// The largest weight: bounding each keeps the sum of any split's weights within `u64`, which
/// the weighted pick needs (an overflowing sum left it with no sampler, as if every weight were 0).
const MAX_WEIGHT: u64 = u32::MAX as u64;

fn bounded(weight: u64, written: &Value, unit: &str) -> Result<u64, String> {
    if weight <= MAX_WEIGHT {
        Ok(weight)
    } else {
        Err(format!(
            "{written} is too large; a weight may be at most {MAX_WEIGHT}{unit}"
        ))
    }
}

fn quantity_weight(w: &Value) -> Result<u64, String> {
    match w {
        Value::String(s) => quantity::parse_milli(s),
        Value::Number(n) => quantity::parse_milli(&n.to_string()),
        other => Err(format!("{other} is not a Kubernetes quantity")),
    }
}

fn integer_weight(w: &Value) -> Result<u64, String> {
    let Value::Number(n) = w else {
        return Err(format!(
            "{w} is not a number (Quantity strings such as \"500m\" are split v1alpha1 only)"
        ));
    };
    if let Some(v) = n.as_u64() {
        return Ok(v);
    }
    if n.as_i64().is_some_and(|v| v < 0) || n.as_f64().is_some_and(|v| v < 0.0) {
        return Err(format!("{n} is negative; weights must be >= 0"));
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f <= u32::MAX as f64 => Ok(f as u64),
        _ => Err(format!("{n} is not a whole number")),
    }
}
