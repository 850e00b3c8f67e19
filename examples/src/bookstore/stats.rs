//! What a client counts, and the demo's summary.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::traffic::{self, TrafficRow};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientCounts {
    pub ok: u64,
    pub denied: u64,
    pub failed: u64,
}

/// One client's running totals, as its process reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientReport {
    #[serde(flatten)]
    pub counts: ClientCounts,
    /// Successful purchases by the backend that answered.
    pub backends: BTreeMap<String, u64>,
    /// The last failure, for the table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// `--json` output.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub clients: BTreeMap<String, ClientCounts>,
    pub backends: BTreeMap<String, u64>,
    /// What the control's TrafficMetrics API said at the end (last 30 s).
    #[serde(default)]
    pub traffic: Vec<TrafficRow>,
}

impl Summary {
    pub fn from_reports<'a>(
        reports: impl IntoIterator<Item = (&'a str, &'a ClientReport)>,
    ) -> Self {
        let mut summary = Summary::default();
        for backend in ["bookstore-v1", "bookstore-v2"] {
            summary.backends.insert(backend.to_owned(), 0);
        }
        for (client, report) in reports {
            summary
                .clients
                .insert(client.to_owned(), report.counts.clone());
            for (backend, n) in &report.backends {
                *summary.backends.entry(backend.clone()).or_default() += n;
            }
        }
        summary
    }

    /// The live table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<12} {:>8} {:>8} {:>8}\n",
            "client", "ok", "denied", "failed"
        );
        for (client, c) in &self.clients {
            out.push_str(&format!(
                "{client:<12} {:>8} {:>8} {:>8}\n",
                c.ok, c.denied, c.failed
            ));
        }
        out.push_str(&format!("\n{:<12} {:>8}\n", "backend", "requests"));
        for (backend, n) in &self.backends {
            out.push_str(&format!("{backend:<12} {n:>8}\n"));
        }
        if !self.traffic.is_empty() {
            out.push_str("\nTrafficMetrics (the control's API, last 30 s)\n");
            out.push_str(&traffic::table(&self.traffic));
        }
        out
    }
}
