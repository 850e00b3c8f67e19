//! Shared helpers for the integration tests in `tests/tests/`: test data (with the conformance
//! suite's `<NAMESPACE>` substituted), a small model of the cluster that kuttl steps apply to and
//! delete from, identities, requests, and decisions as comparable values. The fixtures that start
//! a control service and workloads are `smi-test-util`'s; [`live`] plays the conformance suite on
//! them.
//!
//! This is test code: helpers panic with a message instead of returning errors.

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use rand::SeedableRng;
use rand::rngs::StdRng;
use smi_core::model::RouteKind;
use smi_core::policy::{Denied, HttpRequest, Permit, Request, Route, ServiceName};
use smi_core::{Format, Loaded, Options, ServiceAccount, Snapshot, SpiffeId, load_str};

mod cluster;
pub mod live;

pub use cluster::{Cluster, Object, objects, test_step_deletes};

/// Test data: the conformance suite's manifests (`conformance/`) and the parse cases (`parse/`).
pub const DATA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data");

/// The namespace the conformance runner would create; replaces `<NAMESPACE>`.
pub const NAMESPACE: &str = "conformance";

pub const TRUST_DOMAIN: &str = smi_core::DEFAULT_TRUST_DOMAIN;

/// The text of `data/<rel>`, with `<NAMESPACE>` replaced by [`NAMESPACE`].
pub fn data_text(rel: &str) -> String {
    let path = format!("{DATA_DIR}/{rel}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    text.replace("<NAMESPACE>", NAMESPACE)
}

/// Loads `data/<rel>` on its own; diagnostics name it `<rel>`.
pub fn load_data(rel: &str) -> Loaded {
    load_str(rel, &data_text(rel), Format::from_path(rel))
}

/// Every diagnostic of a load, displayed, one per line (for assertion messages).
pub fn show(loaded: &Loaded) -> String {
    let lines: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// Loads YAML text and fails the test on any error.
pub fn load_valid(source: &str, yaml: &str) -> Loaded {
    let loaded = load_str(source, yaml, Format::Yaml);
    assert!(
        loaded.is_valid(),
        "{source} should load:\n{}",
        show(&loaded)
    );
    loaded
}

/// Loads `docs` (joined with `---`) as `w.yaml`, which must have no error, checks the load's
/// warnings and then the compile warnings exactly (as displayed), and returns the snapshot.
pub fn warned(docs: &[&str], load: &[&str], compile: &[&str]) -> Snapshot {
    let yaml = docs.join("---\n");
    let loaded = load_str("w.yaml", &yaml, Format::Yaml);
    assert!(loaded.is_valid(), "{}", show(&loaded));
    let got: Vec<String> = loaded.warnings().map(ToString::to_string).collect();
    assert_eq!(got, load, "load warnings for\n{yaml}");
    let snapshot = Snapshot::compile(loaded.policy, Options::default());
    let got: Vec<String> = snapshot
        .warnings()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(got, compile, "compile warnings for\n{yaml}");
    snapshot
}

/// Compiles YAML text that must load without errors.
pub fn snapshot_of(yaml: &str, options: Options) -> Snapshot {
    Snapshot::compile(load_valid("policy.yaml", yaml).policy, options)
}

/// The SPIFFE ID of `namespace/account` in the default trust domain.
pub fn spiffe(namespace: &str, account: &str) -> SpiffeId {
    ServiceAccount::new(namespace, account).spiffe_id(TRUST_DOMAIN)
}

/// The SPIFFE ID of a ServiceAccount in the conformance namespace.
pub fn sa(account: &str) -> SpiffeId {
    spiffe(NAMESPACE, account)
}

/// A header map from `(name, value)` pairs.
pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|e| panic!("header name {name:?}: {e}"));
        let value =
            HeaderValue::from_str(value).unwrap_or_else(|e| panic!("header value {value:?}: {e}"));
        map.append(name, value);
    }
    map
}

/// An HTTP request to `port` (`None`: no port in the question).
pub fn http<'a>(
    port: Option<u16>,
    method: &'a str,
    path: &'a str,
    headers: &'a HeaderMap,
) -> Request<'a> {
    Request::http(port, HttpRequest::new(method, path, headers))
}

/// A decision as an owned, comparable value, so tables can state exactly what they expect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Permissive,
    Granted {
        target: String,
        rule_index: usize,
        kind: RouteKind,
        route: String,
        matched: Option<String>,
    },
    Denied(Denied),
}

/// `Granted` by `target`'s rule `rule_index`, which names `kind route`, via match `matched`.
pub fn granted(
    target: &str,
    rule_index: usize,
    kind: RouteKind,
    route: &str,
    matched: Option<&str>,
) -> Decision {
    Decision::Granted {
        target: target.to_owned(),
        rule_index,
        kind,
        route: route.to_owned(),
        matched: matched.map(str::to_owned),
    }
}

impl From<Result<Permit<'_>, Denied>> for Decision {
    fn from(result: Result<Permit<'_>, Denied>) -> Self {
        match result {
            Ok(Permit::Permissive) => Decision::Permissive,
            Ok(Permit::Granted {
                target,
                rule_index,
                rule,
                matched,
                ..
            }) => Decision::Granted {
                target: target.name.clone(),
                rule_index,
                kind: rule.kind,
                route: rule.name.clone(),
                matched: matched.map(str::to_owned),
            },
            Err(denied) => Decision::Denied(denied),
        }
    }
}

/// `authorize` as a [`Decision`].
pub fn decide(
    snapshot: &Snapshot,
    to: &SpiffeId,
    from: &SpiffeId,
    request: &Request<'_>,
) -> Decision {
    snapshot.authorize(to, Some(from), request).into()
}

/// Sends `n` requests to `service` and counts where each goes: a backend's name, or the root
/// service's own name when the route keeps it (no split, unmatched, no weight).
pub fn count_picks(
    snapshot: &Snapshot,
    service: ServiceName<'_>,
    request: Option<&HttpRequest<'_>>,
    n: usize,
    seed: u64,
) -> BTreeMap<String, usize> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        // Routed per request, as a client does.
        let route: Route<'_> = snapshot.route(service, request);
        let target = route
            .pick(&mut rng)
            .map_or(service.name, |b| b.service.as_str());
        *counts.entry(target.to_owned()).or_insert(0) += 1;
    }
    counts
}

/// How many of `counts` went to `service`.
pub fn count(counts: &BTreeMap<String, usize>, service: &str) -> usize {
    counts.get(service).copied().unwrap_or(0)
}
