//! The control service under load, over its real gRPC path:
//! `cargo run --release -p smi-benches --bin control [-- [--quick] [--only SECTION]]`, where a
//! section is `certs`, `fanout`, `ingest` or `etcd` (a full run measures them in that order).
//!
//! The control service runs in a child process (this binary, re-executed in the `serve` role), so
//! that its memory can be read from `/proc` and the load generator's work is not counted in it.
//! This process is the workloads: it enrolls, requests certificates and holds Watch streams, over
//! TLS on 127.0.0.1.
//!
//! - **Certificates per second**: Certify calls (join token + CSR) from 64 concurrent requests over
//!   4 HTTP/2 connections, against the baseline of signing the same CSRs in-process on one core
//!   (the arithmetic limit of one core), interleaved over rounds.
//! - **Fan-out**: N subscribers hold Watch streams (100 per connection, each connection its own
//!   workload identity); one TrafficSplit file is rewritten; the times from the write to the
//!   first and to the last subscriber's receipt. The fan-out is first -> last (the write -> first
//!   part is the file watch's debounce and the reload). The baseline is the same change to one
//!   subscriber in the same round: `last(N) - last(1)` is the cost of the other N - 1.
//! - **Memory per subscriber**: the control process's resident memory before and after the N
//!   streams are opened, divided by N.
//! - **Report ingest**: 10,000 simulated workloads (100 identities of 100 pods; each pod its own
//!   instance id and deployment) send realistic Report calls (3 edges of 50 latency bins: one
//!   inbound, one outbound, one outbound through a split) with 256 in flight over the 100
//!   identities' connections. First the first report of each (30,000 new series), then rounds of
//!   steady reporting; reports per second, against the baseline of reading and storing the same
//!   reports in-process on one core (`wire::report` + `TelemetryStore::ingest`, no network).
//! - **Memory per series**: two measures. The control's resident memory before and after the
//!   first pass, divided by the series created; and the store's own accounting
//!   (`smi_control_telemetry_bytes` on the admin `/metrics`: the maps' allocated buckets, the
//!   keys' strings, the slot arrays and each slot's packed bytes), divided by the series, with
//!   the slots per series, from which an hour of history (at most 121 slots) is projected.
//! - **On etcd** (`etcd`): a 3-member etcd cluster, three replicas sharing one prefix and one
//!   replica on another (in this process, each with its own runtime and etcd connection),
//!   against the control on files, interleaved round by round: the cost of
//!   one etcd put; fan-out to N subscribers spread over the three replicas, on the one replica,
//!   on files (a key put or a file rename; write to first and to last receipt); certificates
//!   per second with 64 in flight on each, and every process's CPU per certificate.
//!
//! The modules: `service` (the control service in its child process, the handle this process
//! holds: enrollment, its memory, its admin API; and `Target`, what the phases need of any
//! control), `replicas` (control replicas on etcd, in this process), `host` (what `/proc` and
//! etcd's `/metrics` say), then one per phase:
//! `enrollment` (certificates per second), `fanout` (fan-out and memory per subscriber),
//! `ingest` (report ingest and memory per series), `etcd` (the three variants side by side).

// The CPU times of processes, as the data-plane benchmark reads them.
#[path = "../dataplane/cpu.rs"]
mod cpu;
mod enrollment;
mod etcd;
mod fanout;
mod host;
mod ingest;
mod replicas;
mod service;

use std::time::Duration;

use enrollment::certificates_per_second;
use etcd::etcd;
use fanout::fan_out;
use ingest::ingest;
use service::{Control, serve_role};

/// The sections, in the order a full run measures them.
const SECTIONS: [&str; 4] = ["certs", "fanout", "ingest", "etcd"];

const ROLE: &str = "SMI_BENCH_ROLE";

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if std::env::var_os(ROLE).is_some() {
        return runtime.block_on(serve_role());
    }
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--only SECTION` measures one section.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .map(|i| args.get(i + 1).cloned().unwrap_or_default());
    if let Some(only) = &only
        && !SECTIONS.contains(&only.as_str())
    {
        return Err(format!("--only {only}: no such section ({})", SECTIONS.join(", ")).into());
    }
    runtime.block_on(run(quick, only.as_deref()))
}

async fn run(quick: bool, only: Option<&str>) -> Result<(), Error> {
    let runs = |section: &str| only.is_none_or(|o| o == section);
    let dir = tempfile::tempdir()?;
    let control = Control::start(dir.path())?;
    let rounds = if quick { 3 } else { 5 };
    let window = Duration::from_secs(if quick { 1 } else { 3 });
    println!("# smi-control under load ({rounds} rounds; median [min-max])");

    let mut summary = String::from("control:");
    if runs("certs") {
        let certs = certificates_per_second(&control, rounds, window).await?;
        summary.push_str(&format!(
            " certs_per_s={:.0} certs_vs_one_core_signing={:.2}",
            certs.grpc, certs.ratio
        ));
    }
    let sizes: &[usize] = match (runs("fanout"), quick) {
        (false, _) => &[],
        (true, true) => &[1_000],
        (true, false) => &[10_000, 1_000],
    };
    let mut fanouts = Vec::new();
    for &n in sizes {
        fanouts.push(fan_out(&control, n, rounds).await?);
    }
    for f in &fanouts {
        summary.push_str(&format!(
            " fanout_{n}_ms={:.1} write_to_last_{n}_ms={:.1} last_{n}_minus_last_1_ms={:.1}",
            f.span_ms,
            f.last_ms,
            f.added_ms,
            n = f.subscribers
        ));
    }
    // Only the first phase's memory counts: later phases reuse what the allocator kept.
    if let Some(f) = fanouts.first() {
        summary.push_str(&format!(
            " bytes_per_subscriber={} (at {})",
            f.bytes_per_subscriber, f.subscribers
        ));
    }
    if runs("ingest") {
        let window = Duration::from_secs(if quick { 2 } else { 5 });
        let ingested = ingest(&control, rounds, window).await?;
        summary.push_str(&format!(
            " reports_per_s={:.0} reports_vs_one_core_ingest={:.2} first_reports_per_s={:.0} rss_bytes_per_series={} store_bytes_per_series={} store_bytes_per_series_1h={}",
            ingested.steady,
            ingested.ratio,
            ingested.first,
            ingested.rss_per_series,
            ingested.store_per_series,
            ingested.store_per_series_hour,
        ));
    }
    if runs("etcd") {
        let subscribers = if quick { 1_000 } else { 10_000 };
        let run = etcd(&control, subscribers, rounds, window).await?;
        summary.push_str(&etcd_summary(&run));
    }
    control.stop();
    println!("{summary}");
    Ok(())
}

/// The etcd section's keys: `etcd3` three replicas, `etcd1` one, `files` the control on files.
fn etcd_summary(run: &etcd::EtcdRun) -> String {
    let n = run.subscribers;
    let mut keys = format!(
        " etcd_put_ms={:.2} etcd_get_ms={:.2} etcd_fsync_ms={:.2}",
        run.put_ms, run.get_ms, run.fsync_ms
    );
    for (i, name) in ["etcd3", "etcd1", "files"].iter().enumerate() {
        keys.push_str(&format!(
            " {name}_write_to_first_{n}_ms={:.1} {name}_write_to_last_{n}_ms={:.1} {name}_fanout_{n}_ms={:.1}",
            run.first_ms[i], run.last_ms[i], run.span_ms[i]
        ));
    }
    keys.push_str(&format!(
        " write_to_last_{n}_3r_vs_1r={:.2} write_to_last_{n}_etcd_vs_files={:.2} write_to_last_{n}_3r_vs_files={:.2}",
        run.last_ms[0] / run.last_ms[1],
        run.last_ms[1] / run.last_ms[2],
        run.last_ms[0] / run.last_ms[2],
    ));
    for (i, name) in ["etcd3", "etcd1", "files"].iter().enumerate() {
        keys.push_str(&format!(
            " {name}_certs_per_s={:.0} {name}_cpu_us_per_cert={:.0}",
            run.certs[i], run.cpu_us_per_cert[i]
        ));
    }
    keys.push_str(&format!(
        " certs_3r_vs_1r={:.2} certs_etcd_vs_files={:.2} certs_3r_vs_files={:.2}",
        run.certs[0] / run.certs[1],
        run.certs[1] / run.certs[2],
        run.certs[0] / run.certs[2],
    ));
    keys
}
