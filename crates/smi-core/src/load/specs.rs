//! HTTPRouteGroup, TCPRoute and UDPRoute (specs.smi-spec.io v1alpha1-v1alpha4).

use serde_json::Value;

use super::access::port_value;
use super::diagnostic::Reporter;
use super::document::Version;
use super::wire::{self, HttpMatchDoc, HttpRouteGroupDoc, L4RouteDoc};
use crate::model::{HttpMatch, HttpRouteGroup, L4Protocol, L4Route, Meta, Method, MethodSet};

pub(crate) fn read_http_route_group(
    value: &Value,
    meta: Meta,
    r: &mut Reporter<'_>,
) -> Option<HttpRouteGroup> {
    let doc: HttpRouteGroupDoc = wire::parse(value, r)?;
    // Both shapes are accepted under every version: the conformance suite writes top-level
    // `matches` under v1alpha4, and the split docs' A/B example does too.
    let (docs, prefix) = match (doc.spec.and_then(|s| s.matches), doc.matches) {
        (Some(m), _) => (m, "spec.matches"),
        (None, Some(m)) => (m, "matches"),
        (None, None) => (Vec::new(), "spec.matches"),
    };
    if docs.is_empty() {
        r.warn(
            prefix.to_owned(),
            "no matches: rules that reference this group grant nothing",
        );
    }
    let mut matches = Vec::with_capacity(docs.len());
    let mut ok = true;
    for (i, m) in docs.iter().enumerate() {
        match http_match(m, &format!("{prefix}[{i}]"), r) {
            Some(m) => {
                if matches.iter().any(|other: &HttpMatch| other.name == m.name) {
                    r.warn(
                        format!("{prefix}[{i}].name"),
                        format!("duplicate match name {:?}", m.name),
                    );
                }
                matches.push(m);
            }
            None => ok = false,
        }
    }
    ok.then_some(HttpRouteGroup { meta, matches })
}

fn http_match(m: &HttpMatchDoc, field: &str, r: &mut Reporter<'_>) -> Option<HttpMatch> {
    let Some(name) = m.name.as_deref().filter(|n| !n.is_empty()) else {
        r.error(format!("{field}.name"), "missing");
        return None;
    };
    let mut ok = true;
    let path_regex = m.path_regex.clone().filter(|p| !p.is_empty());
    if let Some(p) = &path_regex
        && let Err(e) = check_regex(p)
    {
        r.error(
            format!("{field}.pathRegex"),
            format!("invalid regex {p:?}: {e}"),
        );
        ok = false;
    }
    let mut methods = MethodSet::EMPTY;
    for (i, name) in m.methods.iter().flatten().enumerate() {
        if name == "*" {
            methods = methods.with_any();
        } else if let Some(method) = Method::from_name(name) {
            methods = methods.with(method);
        } else {
            r.error(
                format!("{field}.methods[{i}]"),
                format!(
                    "unknown method {name:?}; expected * or one of GET, HEAD, PUT, POST, DELETE, CONNECT, OPTIONS, TRACE, PATCH"
                ),
            );
            ok = false;
        }
    }
    // Absent or empty methods mean any method (the spec's header-only matches, and OSM).
    if methods.is_empty() {
        methods = MethodSet::ANY;
    }
    let headers = match &m.headers {
        None | Some(Value::Null) => Vec::new(),
        Some(h) => headers(h, &format!("{field}.headers"), r).unwrap_or_else(|| {
            ok = false;
            Vec::new()
        }),
    };
    ok.then(|| HttpMatch {
        name: name.to_owned(),
        path_regex,
        methods,
        headers,
    })
}

/// Headers as a map (`{name: regex}`) or a list of single-key maps (`[{name: regex}]`).
fn headers(value: &Value, field: &str, r: &mut Reporter<'_>) -> Option<Vec<(String, String)>> {
    let mut entries: Vec<(String, &Value, String)> = Vec::new();
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                entries.push((k.clone(), v, format!("{field}.{k}")));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                match item.as_object() {
                    Some(map) if map.len() == 1 => {
                        for (k, v) in map {
                            entries.push((k.clone(), v, format!("{field}[{i}].{k}")));
                        }
                    }
                    _ => {
                        r.error(
                            format!("{field}[{i}]"),
                            "each list item must be a map with exactly one header name",
                        );
                        return None;
                    }
                }
            }
        }
        _ => {
            r.error(
                field.to_owned(),
                "must be a map of header name to regex, or a list of such single-entry maps",
            );
            return None;
        }
    }
    let mut out = Vec::with_capacity(entries.len());
    let mut ok = true;
    for (name, v, f) in entries {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            r.error(f, format!("{name:?} is not a valid HTTP header name"));
            ok = false;
            continue;
        }
        let pattern = match v {
            Value::String(s) => s.clone(),
            Value::Number(_) | Value::Bool(_) => v.to_string(),
            _ => {
                r.error(f, "header value must be a regex string");
                ok = false;
                continue;
            }
        };
        if let Err(e) = check_regex(&pattern) {
            r.error(f, format!("invalid regex {pattern:?}: {e}"));
            ok = false;
            continue;
        }
        out.push((name.to_ascii_lowercase(), pattern));
    }
    ok.then_some(out)
}

/// Validation parses the pattern, and the anchored form compilation (`crate::policy`) builds
/// from it once per pattern: a valid pattern can still swallow the anchor's closing parenthesis
/// (a verbose-mode `#` comment runs to the end of the line), and would then match nothing.
/// Parsing costs a quarter of building; a pattern too large to build is reported by `compile`.
fn check_regex(pattern: &str) -> Result<(), String> {
    let parse = |p: &str| {
        regex_syntax::Parser::new().parse(p).map(drop).map_err(|e| {
            e.to_string()
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
    };
    parse(pattern)?;
    parse(&format!("^(?:{pattern})$")).map_err(|e| format!("cannot be anchored as ^(?:...)$: {e}"))
}

pub(crate) fn read_l4_route(
    value: &Value,
    version: Version,
    udp: bool,
    meta: Meta,
    r: &mut Reporter<'_>,
) -> Option<L4Route> {
    let doc: L4RouteDoc = wire::parse(value, r)?;
    let protocol = if udp {
        L4Protocol::Udp
    } else {
        L4Protocol::Tcp
    };
    let matches = doc.spec.and_then(|s| s.matches);
    if version < Version::V1Alpha4 && matches.is_some() {
        r.warn(
            "spec.matches".to_owned(),
            format!(
                "ports are a specs v1alpha4 field; read anyway from {}",
                meta.api_version
            ),
        );
    }
    let mut ports = Vec::new();
    for (i, p) in matches
        .and_then(|m| m.ports)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        match port_value(p) {
            Ok(p) => ports.push(p),
            Err(e) => {
                r.error(format!("spec.matches.ports[{i}]"), e);
                return None;
            }
        }
    }
    ports.sort_unstable();
    ports.dedup();
    Some(L4Route {
        meta,
        protocol,
        ports,
    })
}
