//! Reports to the control: every `report_interval`, what the metrics counted since the last
//! report (per edge: successes, failures, denials and the latency sketch) goes to the control's
//! `Report` RPC, with this process's random instance id and a sequence number from 1.
//!
//! A report whose RPC failed is sent again, unchanged (same sequence), at the next tick, before
//! anything newer, unless the control refused it for what it is (an invalid argument, a
//! permission): sent again it would be refused again and hold back every later report, so it is
//! dropped, with a warning; what is counted meanwhile waits in the metrics' backlog. A report carries at
//! most [`MAX_EDGES_PER_REPORT`] edges (the rest, oldest first, go in the next ones); a tick
//! with nothing to report sends nothing. Reporting runs in its own task: requests never wait
//! for it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use smi_core::proto::v1::{self, control_client::ControlClient};
use smi_core::telemetry::{Direction, Workload};
use tokio::time::MissedTickBehavior;
use tonic::transport::Channel;

use super::Inner;
use crate::control::{ClientError, Credentials, connect, control_client};
use crate::metrics::{EdgeDelta, Metrics};

/// The most edges one report carries.
pub const MAX_EDGES_PER_REPORT: usize = 1_000;

/// The most bytes of edges one report carries: well under the control's 256 KiB request limit,
/// so a busy workload's report is never refused for its size.
pub const MAX_REPORT_BYTES: usize = 192 * 1024;

/// How long one Report RPC (with connecting) may take.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// The reports of one process: what was sent, and what is to be sent again.
#[derive(Debug)]
pub(crate) struct Reporter {
    instance_id: String,
    /// Of the last report made.
    sequence: u64,
    names: v1::WorkloadNames,
    /// Made, not yet delivered.
    unsent: Option<v1::ReportRequest>,
    /// The end of the time the last report made covered.
    covered_until: Instant,
    max_edges: usize,
}

impl Reporter {
    pub(crate) fn new(workload: &Workload, now: Instant, max_edges: usize) -> Self {
        Self {
            instance_id: format!("{:032x}", rand::random::<u128>()),
            sequence: 0,
            names: v1::WorkloadNames {
                workload: workload.name.clone(),
                pod: workload.pod.clone(),
            },
            unsent: None,
            covered_until: now,
            max_edges,
        }
    }

    /// The report to send now: the undelivered one again, else a new one of what `metrics`
    /// counted until its last drain; `None` when there is nothing to report.
    pub(crate) fn next(&mut self, metrics: &Metrics, now: Instant) -> Option<&v1::ReportRequest> {
        if self.unsent.is_none() {
            let (edges, rest) = fit(metrics.take_edges(self.max_edges));
            if !rest.is_empty() {
                metrics.put_back(rest);
            }
            let covered = now.saturating_duration_since(self.covered_until);
            self.covered_until = now;
            if edges.is_empty() {
                return None;
            }
            self.sequence += 1;
            self.unsent = Some(v1::ReportRequest {
                instance_id: self.instance_id.clone(),
                sequence: self.sequence,
                interval_millis: u32::try_from(covered.as_millis()).unwrap_or(u32::MAX),
                names: Some(self.names.clone()),
                edges,
            });
        }
        self.unsent.as_ref()
    }

    /// The control has the last report (counted now, or already before).
    pub(crate) fn delivered(&mut self) {
        self.unsent = None;
    }
}

/// The edges that fit in [`MAX_REPORT_BYTES`] (at least one), and those that wait.
fn fit(deltas: Vec<EdgeDelta>) -> (Vec<v1::EdgeStats>, Vec<EdgeDelta>) {
    let mut bytes = 0;
    let mut edges = Vec::with_capacity(deltas.len());
    let mut rest = Vec::new();
    for delta in deltas {
        if rest.is_empty() {
            let stats = edge(&delta);
            let len = prost::Message::encoded_len(&stats) + 4;
            if edges.is_empty() || bytes + len <= MAX_REPORT_BYTES {
                bytes += len;
                edges.push(stats);
                continue;
            }
        }
        rest.push(delta);
    }
    (edges, rest)
}

fn edge(e: &EdgeDelta) -> v1::EdgeStats {
    let direction = match e.key.direction {
        Direction::Inbound => v1::Direction::Inbound,
        Direction::Outbound => v1::Direction::Outbound,
    };
    let peer = e.key.peer.as_deref();
    let (latency_bins, latency_counts) = e
        .latency
        .bins()
        .iter()
        .map(|&(bin, count)| (u32::from(bin), count))
        .unzip();
    v1::EdgeStats {
        direction: direction as i32,
        peer_identity: peer.map_or("", |p| p.identity()).to_owned(),
        peer_workload: peer.map_or("", |p| p.workload()).to_owned(),
        peer_pod: peer.map_or("", |p| p.pod()).to_owned(),
        service: e.key.service.to_string(),
        backend: e.key.backend.to_string(),
        route: e.key.route.to_string(),
        success: e.success,
        failure: e.failure,
        denied: e.denied,
        latency_bins,
        latency_counts,
    }
}

/// The reporting task of a mesh.
pub(super) async fn run(inner: Arc<Inner>) {
    let interval = inner.config.report_interval;
    let mut reporter = Reporter::new(&inner.workload, Instant::now(), MAX_EDGES_PER_REPORT);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut client = None;
    let mut failing = false;
    loop {
        ticks.tick().await;
        inner.metrics.drain();
        let Some(report) = reporter.next(&inner.metrics, Instant::now()) else {
            continue;
        };
        let (report, sequence) = (report.clone(), report.sequence);
        let sent = tokio::time::timeout(RPC_TIMEOUT, send(&inner, &mut client, report)).await;
        match sent {
            Ok(Ok(())) => {
                reporter.delivered();
                inner.reported(true);
                if std::mem::take(&mut failing) {
                    tracing::info!(sequence, "traffic reports delivered again");
                }
            }
            Ok(Err(Failed::Refused(status))) => {
                reporter.delivered();
                inner.reported(false);
                tracing::warn!(sequence, code = ?status.code(), error = status.message(), "the control refused a traffic report; it is dropped");
            }
            Ok(Err(Failed::Retry(error))) => {
                inner.reported(false);
                client = None;
                failed(&mut failing, sequence, &error.to_string());
            }
            Err(_) => {
                inner.reported(false);
                client = None;
                failed(&mut failing, sequence, "timed out");
            }
        }
    }
}

/// Logs a failed report: the first of a row as a warning, the others at debug.
fn failed(failing: &mut bool, sequence: u64, error: &str) {
    if std::mem::replace(failing, true) {
        tracing::debug!(sequence, %error, "traffic report failed; retrying at the next tick");
    } else {
        tracing::warn!(sequence, %error, "traffic report failed; retrying at each tick");
    }
}

/// Why a report was not delivered.
#[derive(Debug)]
enum Failed {
    /// The control will refuse this report whenever it is sent.
    Refused(tonic::Status),
    /// It may go through at the next tick.
    Retry(ClientError),
}

impl From<ClientError> for Failed {
    fn from(error: ClientError) -> Self {
        Failed::Retry(error)
    }
}

/// One Report RPC, on the channel of the current credentials (made again after a renewal).
async fn send(
    inner: &Inner,
    client: &mut Option<(Arc<Credentials>, ControlClient<Channel>)>,
    report: v1::ReportRequest,
) -> Result<(), Failed> {
    let credentials = inner.credentials.load_full();
    let current = client
        .as_mut()
        .filter(|(used, _)| Arc::ptr_eq(used, &credentials))
        .map(|(_, c)| c.clone());
    let mut rpc = match current {
        Some(rpc) => rpc,
        None => {
            let channel = connect(&inner.config.control, &credentials).await?;
            let rpc = control_client(channel);
            *client = Some((credentials, rpc.clone()));
            rpc
        }
    };
    match rpc.report(report).await {
        Ok(_) => Ok(()),
        Err(status) if refuses_for_good(status.code()) => Err(Failed::Refused(status)),
        Err(status) => Err(Failed::Retry(status.into())),
    }
}

/// Codes that say the report itself is wrong, so sending it again cannot help. Unavailable,
/// timeouts, quota refusals (a pod cap frees up) and authentication (a renewal may fix it) are
/// worth another try.
fn refuses_for_good(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::InvalidArgument
            | tonic::Code::PermissionDenied
            | tonic::Code::FailedPrecondition
            | tonic::Code::OutOfRange
            | tonic::Code::Unimplemented
    )
}

#[cfg(test)]
mod tests;
