//! What the control's TrafficMetrics API says about the demo's workloads over the last 30 s:
//! for each backend, the traffic it received; for each client, the traffic it sent (the
//! `to` edges it measured). The same numbers as `smictl top deployments`, asked the same way.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use smi_control::cli::admin_api::get_json;
use smi_control::telemetry::api_types::{
    BASE_PATH, DENIED_COUNT, Direction, FAILURE_COUNT, P99, SUCCESS_COUNT, TrafficMetrics,
    TrafficMetricsList,
};

use super::WORKLOADS;

/// One workload's line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrafficRow {
    pub deployment: String,
    /// `received` (a backend) or `sent` (a client).
    pub traffic: String,
    /// Answered requests in the window (denials are not answers).
    pub answered: f64,
    /// Requests the mesh refused: counted by the server that refused them (a client sees the
    /// 403 as an answer).
    pub denied: f64,
    /// Percent of answered requests that succeeded; `None` before any was reported.
    pub success_rate: Option<f64>,
    /// The 99th percentile of the time to the response head, milliseconds.
    pub p99_ms: Option<f64>,
}

/// Every workload's row; a workload that has not reported yet has no numbers.
pub async fn fetch(admin: SocketAddr) -> Vec<TrafficRow> {
    let mut rows = Vec::new();
    for workload in &WORKLOADS {
        let namespace = workload.identity.split('/').next().unwrap_or_default();
        let object = format!(
            "{BASE_PATH}/namespaces/{namespace}/deployments/{}",
            workload.role
        );
        let items: Vec<TrafficMetrics> = if workload.serves.is_empty() {
            get_json(admin, &format!("{object}/edges"), None)
                .await
                .ok()
                .and_then(|json| serde_json::from_value::<TrafficMetricsList>(json).ok())
                .map(|list| list.items)
                .unwrap_or_default()
                .into_iter()
                .filter(|item| {
                    item.edge
                        .as_ref()
                        .is_some_and(|e| e.direction == Direction::To)
                })
                .collect()
        } else {
            get_json(admin, &object, None)
                .await
                .ok()
                .and_then(|json| serde_json::from_value::<TrafficMetrics>(json).ok())
                .into_iter()
                .collect()
        };
        rows.push(row(workload.role, workload.serves.is_empty(), &items));
    }
    rows
}

fn row(deployment: &str, client: bool, items: &[TrafficMetrics]) -> TrafficRow {
    let sum = |name: &str| items.iter().filter_map(|i| i.number(name)).sum::<f64>();
    let (success, failure) = (sum(SUCCESS_COUNT), sum(FAILURE_COUNT));
    let answered = success + failure;
    TrafficRow {
        deployment: deployment.to_owned(),
        traffic: if client { "sent" } else { "received" }.to_owned(),
        answered,
        denied: sum(DENIED_COUNT),
        success_rate: (answered > 0.0).then(|| 100.0 * success / answered),
        // Over several edges, the slowest edge's p99 (a bound on the p99 of them all).
        p99_ms: items
            .iter()
            .filter(|i| {
                i.number(SUCCESS_COUNT).unwrap_or(0.0) + i.number(FAILURE_COUNT).unwrap_or(0.0)
                    > 0.0
            })
            .filter_map(|i| i.number(P99))
            .reduce(f64::max),
    }
}

/// The rows as a table.
pub fn table(rows: &[TrafficRow]) -> String {
    let mut out = format!(
        "{:<14} {:<9} {:>9} {:>9} {:>9} {:>9}\n",
        "deployment", "traffic", "answered", "denied", "success", "p99"
    );
    for r in rows {
        let success = r
            .success_rate
            .map_or_else(|| "-".to_owned(), |s| format!("{s:.1}%"));
        let p99 = r
            .p99_ms
            .map_or_else(|| "-".to_owned(), |p| format!("{p:.2}ms"));
        out.push_str(&format!(
            "{:<14} {:<9} {:>9} {:>9} {success:>9} {p99:>9}\n",
            r.deployment, r.traffic, r.answered, r.denied
        ));
    }
    out
}
