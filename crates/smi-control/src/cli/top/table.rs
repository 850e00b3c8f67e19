//! `smictl top`'s tables, like `linkerd viz stat`'s: success rate, requests per second and
//! latency percentiles per row. Names come from workloads (through their reports and
//! certificates) and are shown escaped.

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use super::target::View;
use crate::cli::escape::escape;
use crate::cli::output::Out;
use crate::telemetry::api_types::{
    DENIED_COUNT, Direction, FAILURE_COUNT, ObjectReference, P50, P90, P99, SUCCESS_COUNT,
    TrafficMetrics,
};
use crate::telemetry::go_duration;

const STATS: [&str; 5] = [
    "SUCCESS",
    "RPS",
    "LATENCY_P50",
    "LATENCY_P90",
    "LATENCY_P99",
];

/// Rows under a header, in columns as wide as their widest cell.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn write(&self, out: Out<'_>) -> io::Result<()> {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let header: Vec<String> = self.header.iter().map(|h| (*h).to_owned()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == columns {
                    line.push_str(cell);
                } else {
                    let pad = widths[i] - cell.chars().count();
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad + 3));
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        if self.rows.is_empty() {
            writeln!(out, "(no traffic reported in the window)")?;
        }
        Ok(())
    }
}

/// The table of `items` (an answer's items, or the one object asked for) shown as `view`.
pub fn table(view: View, items: &[TrafficMetrics]) -> Table {
    match view {
        View::Resources { all_namespaces } => resources(items, all_namespaces),
        View::Splits { all_namespaces } => splits(items, all_namespaces),
        View::Edges => edges(items),
    }
}

fn resources(items: &[TrafficMetrics], all_namespaces: bool) -> Table {
    let mut header = Vec::new();
    if all_namespaces {
        header.push("NAMESPACE");
    }
    header.push("NAME");
    header.extend(STATS);
    let rows = items
        .iter()
        .map(|item| {
            let mut row = Vec::new();
            if all_namespaces {
                row.push(escape(&item.resource.namespace).into_owned());
            }
            row.push(escape(&item.resource.name).into_owned());
            row.extend(Stats::of(item).cells());
            row
        })
        .collect();
    Table { header, rows }
}

fn splits(items: &[TrafficMetrics], all_namespaces: bool) -> Table {
    let mut header = Vec::new();
    if all_namespaces {
        header.push("NAMESPACE");
    }
    header.extend(["NAME", "APEX", "BACKEND", "WEIGHT", "SHARE"]);
    header.extend(STATS);
    // Each split's backends together, to compare each one's weight and share with the others'.
    let mut by_split: BTreeMap<&ObjectReference, Vec<&TrafficMetrics>> = BTreeMap::new();
    for item in items {
        by_split.entry(&item.resource).or_default().push(item);
    }
    let mut rows = Vec::new();
    for (split, backends) in by_split {
        let weights: u64 = backends
            .iter()
            .filter_map(|b| b.backend.as_ref())
            .map(|b| b.weight)
            .sum();
        let requests: f64 = backends.iter().map(|b| Stats::of(b).requests()).sum();
        for item in backends {
            let stats = Stats::of(item);
            let (apex, name, weight) = item.backend.as_ref().map_or(("", "", 0), |b| {
                (b.apex.as_str(), b.name.as_str(), b.weight)
            });
            let mut row = Vec::new();
            if all_namespaces {
                row.push(escape(&split.namespace).into_owned());
            }
            row.push(escape(&split.name).into_owned());
            row.push(escape(apex).into_owned());
            row.push(escape(name).into_owned());
            row.push(percent(weight as f64, weights as f64, 1));
            row.push(percent(stats.requests(), requests, 1));
            row.extend(stats.cells());
            rows.push(row);
        }
    }
    Table { header, rows }
}

fn edges(items: &[TrafficMetrics]) -> Table {
    let mut header = vec!["DIRECTION", "PEER", "PEER_NAMESPACE"];
    header.extend(STATS);
    let rows = items
        .iter()
        .map(|item| {
            let edge = item.edge.clone().unwrap_or_default();
            let peer = edge.resource.unwrap_or_default();
            let direction = match edge.direction {
                Direction::To => "to",
                Direction::From => "from",
            };
            let mut row = vec![
                direction.to_owned(),
                escape(&format!("{}/{}", peer.kind.to_ascii_lowercase(), peer.name)).into_owned(),
                escape(&peer.namespace).into_owned(),
            ];
            row.extend(Stats::of(item).cells());
            row
        })
        .collect();
    Table { header, rows }
}

/// One item's numbers.
#[derive(Clone, Copy, Debug)]
struct Stats {
    success: f64,
    failure: f64,
    denied: f64,
    latencies: [Option<f64>; 3],
    window: Duration,
}

impl Stats {
    fn of(item: &TrafficMetrics) -> Self {
        let count = |name| item.number(name).unwrap_or(0.0);
        Self {
            success: count(SUCCESS_COUNT),
            failure: count(FAILURE_COUNT),
            denied: count(DENIED_COUNT),
            latencies: [P50, P90, P99].map(|name| item.number(name)),
            window: go_duration::parse(&item.window).unwrap_or_default(),
        }
    }

    /// Every request, denied ones included.
    fn requests(&self) -> f64 {
        self.success + self.failure + self.denied
    }

    /// SUCCESS (of the answered requests), RPS (every request), then p50, p90 and p99; `-`
    /// where there is nothing to show.
    fn cells(&self) -> Vec<String> {
        let answered = self.success + self.failure;
        let secs = self.window.as_secs_f64();
        let rps = if secs > 0.0 {
            format!("{:.1}", self.requests() / secs)
        } else {
            "-".to_owned()
        };
        let mut cells = vec![percent(self.success, answered, 2), rps];
        for latency in self.latencies {
            cells.push(match latency {
                Some(ms) if answered > 0.0 => milliseconds(ms),
                _ => "-".to_owned(),
            });
        }
        cells
    }
}

/// `part / whole` as a percentage with `decimals`; `-` when `whole` is 0.
fn percent(part: f64, whole: f64, decimals: usize) -> String {
    if whole <= 0.0 {
        return "-".to_owned();
    }
    format!("{:.decimals$}%", 100.0 * part / whole)
}

/// `12ms`, `3.25ms`, `0.5ms`.
fn milliseconds(ms: f64) -> String {
    let text = format!("{ms:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}ms")
}

#[cfg(test)]
mod tests;
