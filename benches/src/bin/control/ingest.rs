//! Report ingest: simulated workloads' Report calls over gRPC, against one core reading and
//! storing the same reports in-process; and the control's memory per series.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use smi_benches::stats::{median, spread};
use smi_core::proto::v1::{self, control_client::ControlClient};
use smi_core::telemetry::sketch::bin_of;
use tonic::transport::Channel;

use crate::Error;
use crate::service::Control;

/// Simulated workloads, the identities they share, and the reports in flight.
const REPORTERS: usize = 10_000;
const REPORTER_IDENTITIES: usize = 100;
const REPORTS_IN_FLIGHT: usize = 256;
/// Latency bins per edge, as an edge with a few hundred requests in 5 s has.
const BINS_PER_EDGE: usize = 50;
/// At most this many slots a series holds over an hour (60 of 5 s, 61 of 1 min).
const SLOTS_PER_HOUR: u64 = 121;

pub struct Ingested {
    pub first: f64,
    pub steady: f64,
    pub ratio: f64,
    pub rss_per_series: u64,
    pub store_per_series: u64,
    pub store_per_series_hour: u64,
}

/// Workload `j`'s report: its names, and three edges of [`BINS_PER_EDGE`] bins each.
fn report_of(j: usize) -> v1::ReportRequest {
    let peer = |k: usize| {
        let k = k % REPORTERS;
        (
            format!(
                "spiffe://cluster.local/ns/bench/sa/reporter-{}",
                k % REPORTER_IDENTITIES
            ),
            format!("w{k}"),
            format!("w{k}-0"),
        )
    };
    let first_bin = bin_of(Duration::from_micros(400)) + (j % 7) as u16;
    let edge = |direction: v1::Direction, k: usize, service: String, backend: String| {
        let (peer_identity, peer_workload, peer_pod) = peer(k);
        let latency_bins: Vec<u32> = (0..BINS_PER_EDGE)
            .map(|b| u32::from(first_bin) + 2 * b as u32)
            .collect();
        let latency_counts: Vec<u64> = (0..BINS_PER_EDGE).map(|b| 1 + (b % 3) as u64).collect();
        let answered: u64 = latency_counts.iter().sum();
        v1::EdgeStats {
            direction: direction as i32,
            peer_identity,
            peer_workload,
            peer_pod,
            service,
            backend,
            route: if direction == v1::Direction::Inbound {
                "bench/access/all".into()
            } else {
                "sent".into()
            },
            success: answered - 1,
            failure: 1,
            denied: 0,
            latency_bins,
            latency_counts,
        }
    };
    v1::ReportRequest {
        instance_id: format!("{j:016x}"),
        sequence: 0,
        interval_millis: 5_000,
        names: Some(v1::WorkloadNames {
            workload: format!("w{j}"),
            pod: format!("w{j}-0"),
        }),
        edges: vec![
            edge(
                v1::Direction::Inbound,
                j + 1,
                format!("bench/w{j}"),
                String::new(),
            ),
            edge(
                v1::Direction::Outbound,
                j + 2,
                format!("bench/w{}", (j + 2) % REPORTERS),
                String::new(),
            ),
            edge(
                v1::Direction::Outbound,
                j + 3,
                format!("bench/split-{}", j % 100),
                format!("bench/w{}", (j + 3) % REPORTERS),
            ),
        ],
    }
}

/// Sends reports from `REPORTS_IN_FLIGHT` tasks, each for its share of the workloads (over the
/// connection of each workload's identity): one report per workload when `until` is `None`,
/// else round after round until then. Returns the reports counted per second.
async fn send_reports(
    channels: &[Channel],
    reports: &Arc<Vec<v1::ReportRequest>>,
    sequences: &Arc<Vec<AtomicU64>>,
    until: Option<Instant>,
) -> Result<f64, Error> {
    let counted = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..REPORTS_IN_FLIGHT {
        let clients: Vec<ControlClient<Channel>> =
            channels.iter().cloned().map(ControlClient::new).collect();
        let (reports, sequences) = (reports.clone(), sequences.clone());
        let (counted, failed) = (counted.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut clients = clients;
            loop {
                for j in (t..REPORTERS).step_by(REPORTS_IN_FLIGHT) {
                    if until.is_some_and(|u| Instant::now() >= u) {
                        return;
                    }
                    let mut request = reports[j].clone();
                    request.sequence = sequences[j].fetch_add(1, Ordering::Relaxed) + 1;
                    let client = &mut clients[j % REPORTER_IDENTITIES];
                    match client.report(request).await {
                        Ok(r) if r.get_ref().counted => counted.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
                if until.is_none() {
                    return;
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        return Err(format!("{failed} Report calls failed or were not counted").into());
    }
    Ok(counted.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// The same reports read and stored in this process, on one core, for `window`: per second.
fn ingest_in_process(reports: &[v1::ReportRequest], window: Duration) -> Result<f64, Error> {
    use smi_control::telemetry::{StoreLimits, SystemClock, TelemetryStore};
    let quotas = smi_control::quota::Quotas::default();
    let store = TelemetryStore::new(Arc::new(SystemClock), StoreLimits::from(&quotas));
    let peers: Vec<smi_core::SpiffeId> = (0..REPORTER_IDENTITIES)
        .map(|i| format!("spiffe://cluster.local/ns/bench/sa/reporter-{i}").parse())
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < window {
        for (j, template) in reports.iter().enumerate().take(1_000) {
            let mut request = template.clone();
            request.sequence = sent + 1;
            let peer = &peers[j % REPORTER_IDENTITIES];
            let report = smi_control::wire::report::report(peer, None, request, &quotas)?;
            store.ingest(&peer.account, report)?;
            sent += 1;
        }
    }
    Ok(sent as f64 / started.elapsed().as_secs_f64())
}

pub async fn ingest(control: &Control, rounds: usize, window: Duration) -> Result<Ingested, Error> {
    let mut channels = Vec::new();
    for i in 0..REPORTER_IDENTITIES {
        channels.push(control.channel(&format!("bench/reporter-{i}")).await?.1);
    }
    let reports = Arc::new((0..REPORTERS).map(report_of).collect::<Vec<_>>());
    let sequences: Arc<Vec<AtomicU64>> =
        Arc::new((0..REPORTERS).map(|_| AtomicU64::new(0)).collect());

    let rss_before = control.rss()?;
    let first = send_reports(&channels, &reports, &sequences, None).await?;
    let rss_after = control.rss()?;
    let series = control.metric("smi_control_telemetry_series").await?;
    let slots = control.metric("smi_control_telemetry_slots").await?;
    let bytes = control.metric("smi_control_telemetry_bytes").await?;
    let rss_per_series = rss_after.saturating_sub(rss_before) / series.max(1);
    println!(
        "report ingest, first report of {REPORTERS} workloads ({REPORTER_IDENTITIES} identities, {REPORTS_IN_FLIGHT} in flight): {first:.0} reports/s; {series} series in {slots} slots; store accounting {bytes} bytes = {} bytes/series; control RSS +{} KiB = {rss_per_series} bytes/series",
        bytes / series.max(1),
        rss_after.saturating_sub(rss_before) / 1024,
    );

    let (mut steady, mut local, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let one_core = ingest_in_process(&reports, window)?;
        let rate = send_reports(
            &channels,
            &reports,
            &sequences,
            Some(Instant::now() + window),
        )
        .await?;
        steady.push(rate);
        local.push(one_core);
        ratios.push(rate / one_core);
    }
    let series_after = control.metric("smi_control_telemetry_series").await?;
    let slots_after = control.metric("smi_control_telemetry_slots").await?;
    let bytes_after = control.metric("smi_control_telemetry_bytes").await?;
    let dropped = control
        .metric("smi_control_telemetry_series_dropped_total")
        .await?;
    // What one more slot costs: the growth of the store over the steady rounds, per slot added.
    let per_slot = bytes_after.saturating_sub(bytes) / slots_after.saturating_sub(slots).max(1);
    let store_per_series = bytes / series.max(1);
    let store_per_series_hour = store_per_series + (SLOTS_PER_HOUR - 1) * per_slot;
    println!(
        "report ingest, steady ({rounds} rounds of {window:?}): {} reports/s over gRPC; in-process read+store, one core: {} reports/s; ratio {}; then {series_after} series in {slots_after} slots ({:.2} per series), {bytes_after} bytes ({} per series, {per_slot} per added slot), {dropped} series dropped; an hour of 5 s reports (121 slots) would take about {store_per_series_hour} bytes/series",
        spread(&steady, 0),
        spread(&local, 0),
        spread(&ratios, 2),
        slots_after as f64 / series_after.max(1) as f64,
        bytes_after / series_after.max(1),
    );
    // What reading the store costs at this size: the TrafficMetrics API over every series.
    let mut answered = Vec::new();
    for path in [
        "/apis/metrics.smi-spec.io/v1alpha1/deployments",
        "/apis/metrics.smi-spec.io/v1alpha1/namespaces/bench/deployments/w0/edges",
        "/metrics",
    ] {
        let started = Instant::now();
        let body = control.admin_get(path).await?;
        answered.push(format!(
            "{path} {:.1} ms ({} KiB)",
            started.elapsed().as_secs_f64() * 1e3,
            body.len() / 1024
        ));
    }
    println!("reading {series_after} series: {}", answered.join("; "));
    Ok(Ingested {
        first,
        steady: median(&steady),
        ratio: median(&ratios),
        rss_per_series,
        store_per_series,
        store_per_series_hour,
    })
}
