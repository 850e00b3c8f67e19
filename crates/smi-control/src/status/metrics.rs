//! The counters and gauges in the Prometheus text exposition format (`/metrics`).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Status;

impl Status {
    /// Prometheus text exposition.
    pub fn prometheus(&self, subscribers: usize, endpoints: usize) -> String {
        let c = &self.counters;
        let policy = self.policy();
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        metric(
            "smi_control_certificates_issued_total",
            "counter",
            "Workload certificates issued.",
            get(&c.certificates_issued),
        );
        metric(
            "smi_control_certificates_refused_total",
            "counter",
            "Certificate requests refused.",
            get(&c.certificates_refused),
        );
        metric(
            "smi_control_policy_loads_total",
            "counter",
            "Policy directory loads.",
            get(&c.policy_loads),
        );
        metric(
            "smi_control_policy_load_failures_total",
            "counter",
            "Policy directory loads with at least one failing file (each served its last good resources, or nothing).",
            get(&c.policy_load_failures),
        );
        metric(
            "smi_control_policy_errors",
            "gauge",
            "Errors in the policy directory now, over every failing file (0 = healthy).",
            policy.errors.len() as u64,
        );
        metric(
            "smi_control_policy_files_failing",
            "gauge",
            "Policy files whose newest version does not load (0 = every file applies).",
            policy.failing_files.len() as u64,
        );
        metric(
            "smi_control_watches_failing",
            "gauge",
            "Workloads whose Watch streams end before they acknowledge what was sent (0 = every workload receives policy).",
            self.failing_lock().len() as u64,
        );
        metric(
            "smi_control_policy_version",
            "gauge",
            "Version of the state published to workloads.",
            policy.version,
        );
        metric(
            "smi_control_policy_resources",
            "gauge",
            "SMI resources in the serving policy.",
            policy.resources as u64,
        );
        metric(
            "smi_control_updates_sent_total",
            "counter",
            "Policy updates sent to workloads.",
            get(&c.updates_sent),
        );
        metric(
            "smi_control_acks_total",
            "counter",
            "Updates acknowledged by workloads.",
            get(&c.acks),
        );
        metric(
            "smi_control_nacks_total",
            "counter",
            "Updates rejected by workloads.",
            get(&c.nacks),
        );
        metric(
            "smi_control_registrations_refused_total",
            "counter",
            "Endpoint registrations refused.",
            get(&c.registrations_refused),
        );
        metric(
            "smi_control_subscribers",
            "gauge",
            "Connected Watch streams.",
            subscribers as u64,
        );
        metric(
            "smi_control_endpoints",
            "gauge",
            "Registered endpoints.",
            endpoints as u64,
        );
        out
    }
}
