//! Who records: this workload's names (they label every series, so they are kept once here
//! rather than in each), the services it serves, and the registry's options.

use std::sync::Arc;

use smi_core::telemetry::Workload;
use smi_core::{ServiceRef, SpiffeId};

use super::schema::StringValue;

/// Istio's `istio_request_duration_milliseconds` bounds (its defaults), milliseconds.
pub const ISTIO_DURATION_BUCKETS_MS: [f64; 23] = [
    0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 25.0, 50.0, 100.0, 200.0, 250.0, 500.0, 1000.0, 2000.0, 2500.0,
    5000.0, 10000.0, 30000.0, 60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// At most this many milliseconds buckets are kept (more are dropped, largest first).
pub const MAX_DURATION_BUCKETS: usize = 64;

/// The most series one registry holds (about 5 KB each, mostly the latency sketch: at most
/// about 20 MB). Past it, new series are counted together in one series per direction whose
/// labels read `overflow`, so that peers cannot grow a workload's memory by varying what they
/// send. Each direction has half: upstreams answering with every status code cannot push the
/// inbound series (Flagger's) into `overflow`.
pub const MAX_SERIES: usize = 4_096;

/// How a registry records and renders.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsOptions {
    /// Bounds of `istio_request_duration_milliseconds` (and `osm_request_duration_ms`),
    /// milliseconds, ascending. Default: [`ISTIO_DURATION_BUCKETS_MS`].
    pub duration_buckets_ms: Vec<f64>,
    /// Also render OSM's `osm_request_total` and `osm_request_duration_ms` (Flagger's `osm`
    /// provider). Default: off.
    pub osm: bool,
    /// Default: [`MAX_SERIES`].
    pub max_series: usize,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        Self {
            duration_buckets_ms: ISTIO_DURATION_BUCKETS_MS.to_vec(),
            osm: false,
            max_series: MAX_SERIES,
        }
    }
}

/// The milliseconds bounds made usable: finite, positive, ascending, distinct, bounded.
pub(crate) fn millis_bounds(configured: &[f64]) -> Vec<f64> {
    let mut bounds: Vec<f64> = configured
        .iter()
        .copied()
        .filter(|b| b.is_finite() && *b > 0.0)
        .collect();
    bounds.sort_by(f64::total_cmp);
    bounds.dedup();
    bounds.truncate(MAX_DURATION_BUCKETS);
    bounds
}

/// This workload's names, as its metrics show them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalNames {
    /// Our SPIFFE ID.
    pub identity: Arc<str>,
    pub workload: Workload,
    /// The services our certificate lets us serve (inbound requests name one of them).
    pub serves: Vec<ServiceRef>,
}

impl LocalNames {
    pub fn new(identity: &SpiffeId, workload: Workload, serves: Vec<ServiceRef>) -> Self {
        Self {
            identity: identity.to_string().into(),
            workload,
            serves,
        }
    }

    /// For metrics made without a mesh: every name reads `unknown`.
    pub fn unknown() -> Self {
        Self {
            identity: "unknown".into(),
            workload: Workload::new("unknown", "unknown", "unknown"),
            serves: Vec::new(),
        }
    }
}

/// A service we serve, with its label made once.
#[derive(Debug)]
pub(crate) struct Served {
    namespace: String,
    name: String,
    label: Arc<str>,
}

pub(crate) fn served(serves: &[ServiceRef]) -> Vec<Served> {
    serves
        .iter()
        .map(|s| Served {
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            label: format!("{}/{}", s.namespace, s.name).into(),
        })
        .collect()
}

/// The service of ours an inbound request's authority names (`svc`, `svc.ns`,
/// `svc.ns.svc[.<domain>]`, with or without a port), or `unknown`. Only services we serve are
/// named, so that callers cannot mint series with made-up authorities; nothing is allocated.
pub(crate) fn service_of(
    served: &[Served],
    own_namespace: &str,
    authority: Option<&str>,
) -> StringValue {
    let Some(authority) = authority else {
        return "unknown".into();
    };
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let (name, rest) = host.split_once('.').unwrap_or((host, ""));
    let namespace = match rest.split_once('.') {
        _ if rest.is_empty() => own_namespace,
        Some((namespace, _)) => namespace,
        None => rest,
    };
    served
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(name) && s.namespace.eq_ignore_ascii_case(namespace))
        .map_or_else(|| "unknown".into(), |s| s.label.clone().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_authority_names_one_of_our_services_or_none() {
        let ours = served(&[ServiceRef::new("bookstore", "bookstore-v1")]);
        let of = |authority| service_of(&ours, "bookstore", authority).to_string();
        for named in [
            "bookstore-v1.bookstore",
            "bookstore-v1.bookstore:8080",
            "bookstore-v1.bookstore.svc.cluster.local.",
            "bookstore-v1",
            "BOOKSTORE-V1.Bookstore",
        ] {
            assert_eq!(of(Some(named)), "bookstore/bookstore-v1", "{named}");
        }
        for other in [
            "bookstore.bookstore",
            "127.0.0.1:8443",
            "[::1]:80",
            "x.other",
        ] {
            assert_eq!(of(Some(other)), "unknown", "{other}");
        }
        assert_eq!(of(None), "unknown");
    }

    #[test]
    fn configured_bounds_are_made_usable() {
        assert_eq!(
            millis_bounds(&[5.0, f64::NAN, 1.0, -1.0, 5.0, f64::INFINITY]),
            vec![1.0, 5.0]
        );
        assert_eq!(millis_bounds(&[1.0; 100]).len(), 1);
        let many: Vec<f64> = (1..200).map(f64::from).collect();
        assert_eq!(millis_bounds(&many).len(), MAX_DURATION_BUCKETS);
    }
}
