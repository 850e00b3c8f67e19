//! Traffic telemetry: workloads' reports ([`crate::api`]'s Report RPC), kept in a bounded store
//! of time slots ([`TelemetryStore`]), served as the SMI TrafficMetrics API on the admin
//! listener ([`routes`]) and read back by `smictl top` ([`api_types`]).
//!
//! - [`report`]: a report as the store takes it (read from protobuf in [`crate::wire`]).
//! - [`store`], [`ring`], `slot`: series per reporting pod, each a ring of 5 s and 1 min slots
//!   over an hour, packed; `instances`: which reports were counted, and the pods per identity.
//! - [`query`]: windows summed into groups; [`resources`]: the API's answers; [`api_types`]:
//!   its JSON; [`quantity`], [`go_duration`]: its value and duration strings.

pub mod api_types;
pub mod clock;
pub mod go_duration;
mod instances;
pub mod quantity;
pub mod query;
pub mod report;
pub mod resources;
pub mod ring;
pub mod routes;
mod slot;
pub mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use instances::InstanceLimits;
pub use query::Totals;
pub use report::{Counts, EdgeKey, EdgeReport, Report};
pub use routes::MetricsState;
pub use store::{Footprint, Ingested, StoreLimits, TelemetryStore};

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::watch;

/// Sweeps `store` every fine slot (5 s) until `stopping` turns true.
pub async fn sweep_until(store: Arc<TelemetryStore>, mut stopping: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(ring::FINE_SLOT);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => store.sweep(),
            _ = stopping.wait_for(|stop| *stop) => return,
        }
    }
}

impl TelemetryStore {
    /// The store's counters and gauges, Prometheus text.
    pub fn prometheus(&self) -> String {
        let c = &self.counters;
        let footprint = self.footprint();
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        metric(
            "smi_control_reports_total",
            "counter",
            "Telemetry reports counted.",
            get(&c.reports_counted),
        );
        metric(
            "smi_control_reports_repeated_total",
            "counter",
            "Telemetry reports ignored as already counted (retries).",
            get(&c.reports_repeated),
        );
        metric(
            "smi_control_reports_refused_total",
            "counter",
            "Telemetry reports refused (invalid, or over a quota).",
            get(&c.reports_refused),
        );
        metric(
            "smi_control_telemetry_series_dropped_total",
            "counter",
            "New telemetry series dropped because their reporting pod held its limit of series.",
            get(&c.series_dropped),
        );
        metric(
            "smi_control_telemetry_series",
            "gauge",
            "Telemetry series held.",
            footprint.series as u64,
        );
        metric(
            "smi_control_telemetry_slots",
            "gauge",
            "Time slots held over every telemetry series.",
            footprint.slots as u64,
        );
        metric(
            "smi_control_telemetry_bytes",
            "gauge",
            "Estimated heap bytes of the telemetry series (maps, keys, slots).",
            footprint.bytes as u64,
        );
        out
    }
}
