//! Prometheus text exposition (version 0.0.4) of a registry, in three schemas:
//!
//! - ours, both directions: `smi_requests_total` and `smi_request_duration_seconds`, labelled
//!   `destination`, `direction`, `route`, `source`, `status`;
//! - Istio's, inbound (`reporter="destination"`): `istio_requests_total` and
//!   `istio_request_duration_milliseconds`, so that Flagger's built-in queries work unchanged;
//! - optionally OSM's, inbound: `osm_request_total` and `osm_request_duration_ms` (Flagger's
//!   `osm` provider).
//!
//! Series whose labels coincide in a schema (ours has no peer workload, for one) are summed.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::registry::{Histogram, Registry};
use super::schema::Direction;
use super::series::Series;

/// A family's values for one label set.
#[derive(Debug, Default)]
struct Sum {
    requests: u64,
    /// The registry's buckets, not cumulative.
    buckets: Vec<u64>,
    sum_nanos: u64,
}

impl Sum {
    fn add(&mut self, requests: u64, buckets: &[u64], sum_nanos: u64) {
        self.requests += requests;
        if self.buckets.len() < buckets.len() {
            self.buckets.resize(buckets.len(), 0);
        }
        for (total, n) in self.buckets.iter_mut().zip(buckets) {
            *total += n;
        }
        self.sum_nanos += sum_nanos;
    }
}

/// Label sets (rendered, sorted) and their values.
type Family = BTreeMap<String, Sum>;

pub(crate) fn render(registry: &Registry) -> String {
    let series: Vec<_> = registry
        .all_series()
        .into_iter()
        .map(|s| {
            let counts = s.counts();
            (s, counts)
        })
        .collect();
    let mut ours = Family::new();
    let mut istio = Family::new();
    let (mut osm_requests, mut osm_durations) = (Family::new(), Family::new());
    for (s, c) in &series {
        let requests = c.outcomes.iter().sum();
        ours.entry(smi_labels(registry, s))
            .or_default()
            .add(requests, &c.buckets, c.sum_nanos);
        if s.key.direction != Direction::Inbound {
            continue;
        }
        istio
            .entry(istio_labels(registry, s))
            .or_default()
            .add(requests, &c.buckets, c.sum_nanos);
        if registry.osm {
            let (names, code) = osm_labels(registry, s);
            osm_requests
                .entry(format!("response_code=\"{code}\",{names}"))
                .or_default()
                .add(requests, &[], 0);
            osm_durations
                .entry(names)
                .or_default()
                .add(requests, &c.buckets, c.sum_nanos);
        }
    }
    let mut out = String::new();
    let (seconds, millis) = (&registry.seconds, &registry.millis);
    counter(
        &mut out,
        "smi_requests_total",
        "Requests through the mesh layers.",
        &ours,
    );
    histogram(
        &mut out,
        "smi_request_duration_seconds",
        "Time to the response head.",
        &ours,
        seconds,
        1e9,
    );
    counter(
        &mut out,
        "istio_requests_total",
        "Requests received (Istio's schema, reported by the destination).",
        &istio,
    );
    histogram(
        &mut out,
        "istio_request_duration_milliseconds",
        "Time to the response head of requests received (Istio's schema).",
        &istio,
        millis,
        1e6,
    );
    if registry.osm {
        counter(
            &mut out,
            "osm_request_total",
            "Requests received (OSM's schema).",
            &osm_requests,
        );
        histogram(
            &mut out,
            "osm_request_duration_ms",
            "Time to the response head of requests received (OSM's schema).",
            &osm_durations,
            millis,
            1e6,
        );
    }
    out
}

fn counter(out: &mut String, name: &str, help: &str, family: &Family) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    for (labels, sum) in family {
        let _ = writeln!(out, "{name}{{{labels}}} {}", sum.requests);
    }
}

/// `per_unit`: nanoseconds per unit of the histogram (1e9 for seconds). Each bound's
/// cumulative count sums the registry's buckets up to that bound's.
fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    family: &Family,
    histogram: &Histogram,
    per_unit: f64,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (labels, sum) in family {
        let (mut cumulative, mut next) = (0, 0);
        let mut up_to = |end: usize| {
            while next < end.min(sum.buckets.len()) {
                cumulative += sum.buckets[next];
                next += 1;
            }
            cumulative
        };
        for (le, &at) in histogram.les.iter().zip(&histogram.at) {
            let count = up_to(at + 1);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {count}");
        }
        let count = up_to(usize::MAX);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let total = sum.sum_nanos as f64 / per_unit;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {total}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// `name="value",...`, values escaped, in the order given.
fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"{}\"", escape(value));
    }
    out
}

pub(crate) fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A label that comes from the peer or the response: `overflow` in the overflow series.
fn own<'a>(series: &Series, value: &'a str) -> &'a str {
    if series.overflow { "overflow" } else { value }
}

fn status_text(series: &Series) -> String {
    own(series, &series.key.status.to_string()).to_owned()
}

fn smi_labels(registry: &Registry, s: &Series) -> String {
    let local = &*registry.local.identity;
    let peer = s.key.peer.as_deref();
    let (source, destination) = match s.key.direction {
        Direction::Inbound => (
            own(s, peer.map_or("unauthenticated", |p| p.identity())),
            local,
        ),
        Direction::Outbound => {
            let backend = &s.key.backend;
            let called = if backend.is_empty() {
                &s.key.service
            } else {
                backend
            };
            (local, own(s, called))
        }
    };
    labels(&[
        ("destination", destination),
        ("direction", s.key.direction.as_str()),
        ("route", &s.key.route),
        ("source", source),
        ("status", &status_text(s)),
    ])
}

fn istio_labels(registry: &Registry, s: &Series) -> String {
    let workload = &registry.local.workload;
    let peer = s.key.peer.as_deref();
    let known = |value: &'static str, f: fn(&super::PeerNames) -> &str| {
        own(s, peer.map(f).filter(|v| !v.is_empty()).unwrap_or(value)).to_owned()
    };
    let service = s.key.service.rsplit('/').next().unwrap_or("unknown");
    let grpc = s.key.grpc_status.map(|c| c.to_string()).unwrap_or_default();
    labels(&[
        ("reporter", "destination"),
        ("destination_workload", &workload.name),
        ("destination_workload_namespace", &workload.namespace),
        ("response_code", &status_text(s)),
        ("source_workload", &known("unknown", |p| p.workload())),
        (
            "source_workload_namespace",
            &known("unknown", |p| p.namespace()),
        ),
        ("source_principal", &known("unknown", |p| p.identity())),
        ("destination_principal", &registry.local.identity),
        ("destination_service_name", own(s, service)),
        ("request_protocol", s.key.protocol.as_str()),
        ("grpc_response_status", own(s, &grpc)),
        (
            "connection_security_policy",
            if peer.is_some() { "mutual_tls" } else { "none" },
        ),
    ])
}

/// OSM's source and destination labels, and the response code.
fn osm_labels(registry: &Registry, s: &Series) -> (String, String) {
    let workload = &registry.local.workload;
    let peer = s.key.peer.as_deref();
    let known = |f: fn(&super::PeerNames) -> &str| {
        own(
            s,
            peer.map(f).filter(|v| !v.is_empty()).unwrap_or("unknown"),
        )
        .to_owned()
    };
    let names = labels(&[
        ("source_namespace", &known(|p| p.namespace())),
        ("source_kind", "Deployment"),
        ("source_name", &known(|p| p.workload())),
        ("source_pod", &known(|p| p.pod())),
        ("destination_namespace", &workload.namespace),
        ("destination_kind", "Deployment"),
        ("destination_name", &workload.name),
        ("destination_pod", &workload.pod),
    ]);
    (names, escape(&status_text(s)))
}
