//! A synthetic but realistic SMI policy, generated as YAML text so that benchmarks exercise the
//! loader as well as the compiler. The one generator behind every benchmark and
//! `policy_memory`.
//!
//! The shape of the generated mesh, for target `i`:
//!
//! * namespaces hold [`TARGETS_PER_NAMESPACE`] targets each (`ns-{i / 8}`), so 10,000 targets
//!   spread over 1,250 namespaces;
//! * the destination is ServiceAccount `app-{i % 4}` of that namespace, so every destination is
//!   opened by two TrafficTargets;
//! * 1-3 sources (`1 + i % 3`) from other namespaces (`client-*` accounts);
//! * one HTTPRouteGroup per target (`routes-{i}`) with 2-4 matches (`2 + i % 3`), every one with
//!   a `pathRegex` and methods, some with header matches; path regexes are distinct per group
//!   (no help from the compiler's regex cache), header regexes repeat;
//! * the rule selects the group's matches by name on even targets and omits `matches` (all of
//!   them) on odd ones;
//! * every eighth target (`i % 8 == 7`) is an L4 target instead: one TCPRoute rule naming the
//!   namespace's TCPRoute. Its HTTPRouteGroup is still generated; TrafficSplits use those as
//!   their `matches`.
//!
//! TCPRoute `k` is `tcp-{k}` in `ns-{k % namespaces}`; TrafficSplit `j` splits `web-{j}` in
//! `ns-{j % namespaces}` over 2-5 backends, and one in five has `matches`.

use std::fmt::{self, Write as _};

use smi_core::model::PolicySet;
use smi_core::policy::ServiceName;
use smi_core::{DEFAULT_TRUST_DOMAIN, Format, Options, ServiceAccount, Snapshot, SpiffeId};

/// TrafficTargets (and so HTTPRouteGroups) per namespace.
pub const TARGETS_PER_NAMESPACE: usize = 8;

const NOUNS: [&str; 16] = [
    "orders",
    "books",
    "carts",
    "users",
    "payments",
    "invoices",
    "items",
    "reviews",
    "stock",
    "shipments",
    "accounts",
    "sessions",
    "coupons",
    "prices",
    "ratings",
    "tickets",
];

/// How many resources of each kind to generate. HTTPRouteGroups: one per TrafficTarget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub targets: usize,
    pub tcp_routes: usize,
    pub splits: usize,
}

impl Shape {
    /// The 10,000-resource mix: 4,000 TrafficTargets, 4,000 HTTPRouteGroups, 1,000 TCPRoutes and
    /// 1,000 TrafficSplits.
    pub const MIXED_10K: Shape = Shape {
        targets: 4_000,
        tcp_routes: 1_000,
        splits: 1_000,
    };

    /// `targets` TrafficTargets with their HTTPRouteGroups, one TCPRoute per namespace and a
    /// TrafficSplit per ten targets: the policy the decision benchmarks ask.
    pub fn with_targets(targets: usize) -> Shape {
        let namespaces = targets.div_ceil(TARGETS_PER_NAMESPACE).max(1);
        Shape {
            targets,
            tcp_routes: namespaces,
            splits: targets / 10,
        }
    }

    pub fn namespaces(&self) -> usize {
        self.targets.div_ceil(TARGETS_PER_NAMESPACE).max(1)
    }

    pub fn route_groups(&self) -> usize {
        self.targets
    }

    /// Resources in total, every kind counted.
    pub fn resources(&self) -> usize {
        self.targets + self.route_groups() + self.tcp_routes + self.splits
    }
}

fn is_l4_target(i: usize) -> bool {
    i % TARGETS_PER_NAMESPACE == TARGETS_PER_NAMESPACE - 1
}

fn target_namespace(i: usize) -> usize {
    i / TARGETS_PER_NAMESPACE
}

/// The API resource of group `i`, distinct per group: `orders-0`, `books-1`, ...
fn resource(i: usize) -> String {
    format!("{}-{i}", NOUNS[i % NOUNS.len()])
}

fn match_count(i: usize) -> usize {
    2 + i % 3
}

const MATCH_NAMES: [&str; 4] = ["read", "write", "admin", "health"];

/// Source `k` of target `i`: (namespace index, account name).
fn source(shape: &Shape, i: usize, k: usize) -> (usize, String) {
    let ns = (target_namespace(i) + 1 + 7 * k) % shape.namespaces();
    (ns, format!("client-{}", (i + k) % 5))
}

/// The whole policy as one multi-document YAML text.
pub fn yaml(shape: &Shape) -> String {
    // ~1 KiB per target with its group; less for the rest.
    let mut out = String::with_capacity(shape.targets * 1_400 + shape.splits * 500 + 4_096);
    match write_policy(&mut out, shape) {
        Ok(()) => out,
        Err(fmt::Error) => unreachable!("writing to a String does not fail"),
    }
}

fn write_policy(out: &mut String, shape: &Shape) -> fmt::Result {
    for i in 0..shape.targets {
        write_route_group(out, i)?;
        write_target(out, shape, i)?;
    }
    for k in 0..shape.tcp_routes {
        write_tcp_route(out, shape, k)?;
    }
    for j in 0..shape.splits {
        write_split(out, shape, j)?;
    }
    Ok(())
}

fn write_route_group(out: &mut String, i: usize) -> fmt::Result {
    let ns = target_namespace(i);
    let res = resource(i);
    write!(
        out,
        "---\napiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\n\
         metadata:\n  name: routes-{i}\n  namespace: ns-{ns}\nspec:\n  matches:\n"
    )?;
    for (m, name) in MATCH_NAMES.iter().enumerate().take(match_count(i)) {
        writeln!(out, "  - name: {name}")?;
        match m {
            0 => {
                writeln!(out, "    pathRegex: '/api/v1/{res}/[0-9]+'")?;
                writeln!(out, "    methods: [GET, HEAD]")?;
            }
            1 => {
                writeln!(out, "    pathRegex: '/api/v1/{res}$'")?;
                writeln!(out, "    methods: [POST, PUT]")?;
                if i.is_multiple_of(2) {
                    writeln!(
                        out,
                        "    headers:\n    - content-type: 'application/json.*'"
                    )?;
                }
            }
            2 => {
                writeln!(out, "    pathRegex: '/admin/{res}/.*'")?;
                writeln!(out, "    methods: [GET, DELETE]")?;
                writeln!(out, "    headers:\n    - x-role: 'admin|ops'")?;
            }
            _ => {
                writeln!(out, "    pathRegex: '/(healthz|readyz)'")?;
                writeln!(out, "    methods: [GET]")?;
            }
        }
    }
    Ok(())
}

fn write_target(out: &mut String, shape: &Shape, i: usize) -> fmt::Result {
    let ns = target_namespace(i);
    write!(
        out,
        "---\napiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\n\
         metadata:\n  name: t-{i}\n  namespace: ns-{ns}\nspec:\n  destination:\n    \
         kind: ServiceAccount\n    name: app-{}\n    namespace: ns-{ns}\n  rules:\n",
        i % 4
    )?;
    if is_l4_target(i) && ns < shape.tcp_routes {
        writeln!(out, "  - kind: TCPRoute\n    name: tcp-{ns}")?;
    } else {
        writeln!(out, "  - kind: HTTPRouteGroup\n    name: routes-{i}")?;
        if i.is_multiple_of(2) {
            let names = &MATCH_NAMES[..match_count(i)];
            writeln!(out, "    matches: [{}]", names.join(", "))?;
        }
    }
    writeln!(out, "  sources:")?;
    for k in 0..1 + i % 3 {
        let (src_ns, name) = source(shape, i, k);
        writeln!(
            out,
            "  - kind: ServiceAccount\n    name: {name}\n    namespace: ns-{src_ns}"
        )?;
    }
    Ok(())
}

fn write_tcp_route(out: &mut String, shape: &Shape, k: usize) -> fmt::Result {
    write!(
        out,
        "---\napiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\n\
         metadata:\n  name: tcp-{k}\n  namespace: ns-{}\nspec:\n  matches:\n",
        k % shape.namespaces()
    )?;
    match k % 3 {
        0 => writeln!(out, "    ports: []"),
        1 => writeln!(out, "    ports: [5432]"),
        _ => writeln!(out, "    ports: [6379, 26379]"),
    }
}

fn write_split(out: &mut String, shape: &Shape, j: usize) -> fmt::Result {
    let ns = j % shape.namespaces();
    write!(
        out,
        "---\napiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\n\
         metadata:\n  name: web-{j}-split\n  namespace: ns-{ns}\nspec:\n  \
         service: web-{j}.ns-{ns}.svc.cluster.local\n  backends:\n"
    )?;
    for b in 0..2 + j % 4 {
        writeln!(
            out,
            "  - service: web-{j}-v{b}\n    weight: {}",
            10 + (b * 37 + j) % 90
        )?;
    }
    // The namespace's L4 target left its HTTPRouteGroup unreferenced: a canary split uses it.
    let group = ns * TARGETS_PER_NAMESPACE + TARGETS_PER_NAMESPACE - 1;
    if j.is_multiple_of(5) && group < shape.targets {
        writeln!(
            out,
            "  matches:\n  - kind: HTTPRouteGroup\n    name: routes-{group}"
        )?;
    }
    Ok(())
}

/// One TrafficSplit of `backends` backends (weights 1-100) for `root` in namespace `ns`.
pub fn split_yaml(ns: &str, root: &str, backends: usize) -> String {
    let mut out = format!(
        "---\napiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\n\
         metadata:\n  name: {root}-split\n  namespace: {ns}\nspec:\n  service: {root}\n  backends:\n"
    );
    for b in 0..backends {
        out.push_str(&format!(
            "  - service: {root}-v{b}\n    weight: {}\n",
            1 + (b * 37) % 100
        ));
    }
    out
}

/// Loads YAML text, panicking on any diagnostic: the generator must produce clean policy.
pub fn load(text: &str) -> PolicySet {
    let loaded = smi_core::load_str("generated.yaml", text, Format::Yaml);
    if !loaded.diagnostics.is_empty() {
        panic!(
            "generated policy has {} diagnostics, first: {}",
            loaded.diagnostics.len(),
            loaded.diagnostics[0]
        );
    }
    loaded.policy
}

/// Compiles with default options, panicking on any warning (dangling references would mean the
/// generator is wrong and the benchmark measures something else).
pub fn compile(policy: PolicySet) -> Snapshot {
    let snapshot = Snapshot::compile(policy, Options::default());
    if let Some(w) = snapshot.warnings().first() {
        panic!(
            "generated policy compiles with {} warnings, first: {w}",
            snapshot.warnings().len()
        );
    }
    snapshot
}

/// [`yaml`], [`load`] and [`compile`] in one.
pub fn snapshot(shape: &Shape) -> Snapshot {
    compile(load(&yaml(shape)))
}

/// The identities and paths to ask a generated policy about, derived from the same scheme.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The destination of the chosen HTTP target.
    pub destination: SpiffeId,
    /// A source that target lists.
    pub source: SpiffeId,
    /// An identity no target lists.
    pub stranger: SpiffeId,
    /// `GET` here matches the group's first match (`read`: pathRegex and methods).
    pub allowed_get_path: String,
    /// `GET` here matches no match of the group (every path regex is tried and fails).
    pub denied_get_path: String,
}

/// A probe at the HTTP target nearest the middle of the policy, with three sources and four
/// matches where the shape allows, and its matches selected by name.
pub fn probe(shape: &Shape) -> Probe {
    assert!(shape.targets > 0, "a probe needs at least one target");
    // i % 2 == 0 (matches listed by name), i % 3 == 2 (three sources, four matches), i % 8 != 7.
    let mid = shape.targets / 2;
    let i = (0..shape.targets)
        .map(|d| (mid + d) % shape.targets)
        .find(|&i| i % 6 == 2 && !is_l4_target(i))
        .unwrap_or(0);
    probe_at(shape, i).unwrap_or_else(|| panic!("target {i} is not an HTTP target"))
}

/// A probe at target `i`; `None` when it is an L4 target (no HTTP rule).
pub fn probe_at(shape: &Shape, i: usize) -> Option<Probe> {
    if i >= shape.targets || (is_l4_target(i) && target_namespace(i) < shape.tcp_routes) {
        return None;
    }
    let ns = target_namespace(i);
    let (src_ns, src_name) = source(shape, i, 0);
    let id = |ns: String, name: String| {
        SpiffeId::new(DEFAULT_TRUST_DOMAIN, ServiceAccount::new(ns, name))
    };
    let res = resource(i);
    Some(Probe {
        destination: id(format!("ns-{ns}"), format!("app-{}", i % 4)),
        source: id(format!("ns-{src_ns}"), src_name),
        stranger: id("intruders".into(), "mallory".into()),
        allowed_get_path: format!("/api/v1/{res}/12345"),
        denied_get_path: format!("/api/v2/{res}/12345"),
    })
}

/// A split root of a generated policy: `(namespace, service)` of TrafficSplit `j`.
pub fn split_root(shape: &Shape, j: usize) -> (String, String) {
    (format!("ns-{}", j % shape.namespaces()), format!("web-{j}"))
}

/// Borrows a `(namespace, name)` pair as a [`ServiceName`].
pub fn service_name(pair: &(String, String)) -> ServiceName<'_> {
    ServiceName {
        namespace: &pair.0,
        name: &pair.1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_policy_is_clean_and_sized() {
        for shape in [Shape::with_targets(10), Shape::with_targets(100)] {
            let snapshot = snapshot(&shape);
            assert_eq!(snapshot.policy().len(), shape.resources());
        }
        let small = Shape {
            targets: 40,
            tcp_routes: 10,
            splits: 10,
        };
        assert_eq!(snapshot(&small).policy().len(), 100);
    }

    #[test]
    fn every_probe_decides_as_named() {
        use smi_core::policy::{Denied, HttpRequest, Request};
        let shape = Shape::with_targets(100);
        let snapshot = snapshot(&shape);
        let headers = http::HeaderMap::new();
        let get = |path| Request::http(Some(8080), HttpRequest::new("GET", path, &headers));
        let probes: Vec<Probe> = (0..shape.targets)
            .filter_map(|i| probe_at(&shape, i))
            .collect();
        assert_eq!(probes.len(), 88);
        for p in &probes {
            let allowed = get(&p.allowed_get_path);
            let denied = get(&p.denied_get_path);
            let ask = |src, req| snapshot.authorize(&p.destination, Some(src), req);
            assert!(ask(&p.source, &allowed).is_ok(), "{p:?}");
            assert!(
                matches!(ask(&p.source, &denied), Err(Denied::NoRuleMatched { .. })),
                "{p:?}"
            );
            assert_eq!(ask(&p.stranger, &allowed), Err(Denied::SourceNotAllowed));
        }
    }
}
