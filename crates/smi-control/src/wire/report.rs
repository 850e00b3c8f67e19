//! A Report off the wire, checked and bounded, as the store's [`Report`]. Every field a
//! workload controls is checked here, before the store sees it; a refusal names the field.
//!
//! `interval_millis` is not used: the store files a report's deltas under the time it arrives
//! (reports come every few seconds and slots are 5 s long, so a report lands within a slot of
//! the interval it covers), which a workload's clock cannot skew.

use smi_core::SpiffeId;
use smi_core::proto::v1;
use smi_core::telemetry::sketch::BINS;
use smi_core::telemetry::{Direction, LatencySketch, Workload};

use crate::quota::{Exceeded, Quotas, at_most};
use crate::telemetry::{Counts, EdgeKey, EdgeReport, Report};

/// Why a report was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReportRefused {
    /// A field is malformed or too long (INVALID_ARGUMENT).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// More edges than a report may carry (RESOURCE_EXHAUSTED).
    #[error(transparent)]
    Quota(#[from] Exceeded),
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ReportRefused {
    ReportRefused::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Reads the report `request` of the caller `identity` (its certificate's), whose certificate
/// names `certified` (its workload and pod, when it does). The reporter is the certificate's
/// workload: a certificate without names cannot report, and names in the request must be the
/// certificate's.
pub fn report(
    identity: &SpiffeId,
    certified: Option<&Workload>,
    request: v1::ReportRequest,
    quotas: &Quotas,
) -> Result<Report, ReportRefused> {
    at_most(
        request.edges.len(),
        quotas.report_edges,
        "edges in one Report",
    )?;
    let text = |field: &str, value: &str| {
        at_most(value.len(), quotas.report_text_bytes, "bytes")
            .map_err(|e| invalid(field, e.to_string()))
    };
    text("instance_id", &request.instance_id)?;
    if request.instance_id.is_empty() {
        return Err(invalid("instance_id", "missing"));
    }
    if request.sequence == 0 {
        return Err(invalid("sequence", "0: sequences start at 1"));
    }
    // The certificate says who reports: its names were checked (in the identity's namespace)
    // when it was issued. Names in the request may only repeat them, so that one workload
    // cannot report as another pod or Deployment.
    let reporter = certified.cloned().ok_or_else(|| {
        invalid(
            "names",
            "the certificate names no workload: enroll with CertifyRequest.names to report",
        )
    })?;
    if reporter.namespace != identity.namespace() {
        return Err(invalid(
            "names",
            "the certificate's workload is not in its identity's namespace",
        ));
    }
    if let Some(names) = request.names.as_ref()
        && !(names.workload.is_empty() && names.pod.is_empty())
        && (names.workload != reporter.name || names.pod != reporter.pod)
    {
        return Err(invalid(
            "names",
            format!(
                "{}/{} is not the workload this certificate names ({}/{})",
                names.workload, names.pod, reporter.name, reporter.pod
            ),
        ));
    }
    let edges = request
        .edges
        .into_iter()
        .enumerate()
        .map(|(i, e)| edge(i, e, quotas))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Report {
        instance: request.instance_id,
        sequence: request.sequence,
        reporter,
        edges,
    })
}

fn edge(index: usize, e: v1::EdgeStats, quotas: &Quotas) -> Result<EdgeReport, ReportRefused> {
    let field = |name: &str| format!("edges[{index}].{name}");
    let direction = match v1::Direction::try_from(e.direction) {
        Ok(v1::Direction::Inbound) => Direction::Inbound,
        Ok(v1::Direction::Outbound) => Direction::Outbound,
        _ => {
            return Err(invalid(
                field("direction"),
                format!("{} is neither INBOUND nor OUTBOUND", e.direction),
            ));
        }
    };
    for (name, value) in [
        ("peer_identity", &e.peer_identity),
        ("service", &e.service),
        ("backend", &e.backend),
        ("route", &e.route),
    ] {
        at_most(value.len(), quotas.report_text_bytes, "bytes")
            .map_err(|err| invalid(field(name), err.to_string()))?;
    }
    let peer_namespace = if e.peer_identity.is_empty() {
        None
    } else {
        let id: SpiffeId = e
            .peer_identity
            .parse()
            .map_err(|err: smi_core::IdentityError| {
                invalid(field("peer_identity"), err.to_string())
            })?;
        Some(id.account.namespace)
    };
    if !e.peer_workload.is_empty() || !e.peer_pod.is_empty() {
        let Some(ns) = &peer_namespace else {
            return Err(invalid(
                field("peer_workload"),
                "a peer's names need its identity (peer_identity is empty)",
            ));
        };
        Workload::new(ns, &e.peer_workload, &e.peer_pod)
            .check()
            .map_err(|err| invalid(field("peer_workload"), err.to_string()))?;
    }
    if e.latency_bins.len() > BINS {
        return Err(invalid(
            field("latency_bins"),
            format!("{} bins: a sketch has at most {BINS}", e.latency_bins.len()),
        ));
    }
    let latency = LatencySketch::from_bins(&e.latency_bins, &e.latency_counts)
        .map_err(|err| invalid(field("latency_bins"), err.to_string()))?;
    Ok(EdgeReport {
        key: EdgeKey {
            direction,
            peer_identity: e.peer_identity.into(),
            peer_workload: e.peer_workload.into(),
            peer_pod: e.peer_pod.into(),
            service: e.service.into(),
            backend: e.backend.into(),
            route: e.route.into(),
        },
        counts: Counts {
            success: e.success,
            failure: e.failure,
            denied: e.denied,
        },
        latency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> SpiffeId {
        "spiffe://cluster.local/ns/shop/sa/web".parse().unwrap()
    }

    fn edge_stats() -> v1::EdgeStats {
        v1::EdgeStats {
            direction: v1::Direction::Outbound as i32,
            peer_identity: "spiffe://cluster.local/ns/shop/sa/db".into(),
            peer_workload: "db".into(),
            peer_pod: "db-0".into(),
            service: "shop/db".into(),
            backend: String::new(),
            route: "sent".into(),
            success: 9,
            failure: 1,
            denied: 0,
            latency_bins: vec![500, 400],
            latency_counts: vec![3, 7],
        }
    }

    fn request(edges: Vec<v1::EdgeStats>) -> v1::ReportRequest {
        v1::ReportRequest {
            instance_id: "a1b2".into(),
            sequence: 1,
            interval_millis: 5_000,
            names: Some(v1::WorkloadNames {
                workload: "web".into(),
                pod: "web-5d8f7c9b4-x2x7q".into(),
            }),
            edges,
        }
    }

    /// The names the caller's certificate carries (as `request` names them).
    fn certified() -> Workload {
        Workload::new("shop", "web", "web-5d8f7c9b4-x2x7q")
    }

    fn refused(request: v1::ReportRequest) -> String {
        report(&id(), Some(&certified()), request, &Quotas::default())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_report_reads_into_the_callers_namespace() {
        let read = report(
            &id(),
            Some(&certified()),
            request(vec![edge_stats()]),
            &Quotas::default(),
        )
        .unwrap();
        assert_eq!(read.reporter, certified());
        assert_eq!(read.edges[0].key.peer_namespace(), "shop");
        assert_eq!(read.edges[0].latency.bins(), &[(400, 7), (500, 3)]);
        assert_eq!(read.edges[0].counts.failure, 1);
        // Without names, the certificate's.
        let mut unnamed = request(vec![]);
        unnamed.names = None;
        let read = report(
            &id(),
            Some(&certified()),
            unnamed.clone(),
            &Quotas::default(),
        )
        .unwrap();
        assert_eq!(read.reporter, certified());
    }

    #[test]
    fn a_report_is_the_certificates_workload_and_no_other() {
        // Another pod's or Deployment's names: refused, naming both.
        let mut other = request(vec![]);
        other.names = Some(v1::WorkloadNames {
            workload: "db".into(),
            pod: "db-0".into(),
        });
        let refusal = refused(other);
        assert!(
            refusal.starts_with("names: db/db-0 is not the workload this certificate names (web/"),
            "{refusal}"
        );
        // A certificate without names reports nothing.
        let without = report(&id(), None, request(vec![]), &Quotas::default()).unwrap_err();
        assert!(
            without
                .to_string()
                .starts_with("names: the certificate names no workload"),
            "{without}"
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        let mut no_sequence = request(vec![]);
        no_sequence.sequence = 0;
        assert!(refused(no_sequence).starts_with("sequence: "));
        let mut no_instance = request(vec![]);
        no_instance.instance_id.clear();
        assert_eq!(refused(no_instance), "instance_id: missing");

        type Spoil = fn(&mut v1::EdgeStats);
        let cases: [(Spoil, &str); 7] = [
            (|e| e.direction = 0, "edges[1].direction: 0 is neither"),
            (
                |e| e.peer_identity = "web".into(),
                "edges[1].peer_identity: ",
            ),
            (
                |e| e.route = "r".repeat(513),
                "edges[1].route: quota exceeded: bytes (513)",
            ),
            (
                |e| e.peer_pod = "Pod".into(),
                "edges[1].peer_workload: pod name",
            ),
            (
                |e| {
                    e.peer_identity.clear();
                },
                "edges[1].peer_workload: a peer's names need its identity",
            ),
            (
                |e| {
                    e.latency_counts.pop();
                },
                "edges[1].latency_bins: 2 bins and 1 counts",
            ),
            (
                |e| e.latency_bins = vec![0; BINS + 1],
                "edges[1].latency_bins: 1201 bins",
            ),
        ];
        for (spoil, says) in cases {
            let mut bad = edge_stats();
            spoil(&mut bad);
            let message = refused(request(vec![edge_stats(), bad]));
            assert!(message.starts_with(says), "{message} (wanted {says})");
        }
    }

    #[test]
    fn too_many_edges_is_a_quota() {
        let quotas = Quotas {
            report_edges: 2,
            ..Quotas::default()
        };
        let refused = report(&id(), None, request(vec![edge_stats(); 3]), &quotas).unwrap_err();
        assert!(matches!(refused, ReportRefused::Quota(_)), "{refused}");
        assert_eq!(
            refused.to_string(),
            "quota exceeded: edges in one Report (3) (limit 2)"
        );
    }
}
