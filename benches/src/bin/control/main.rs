//! The control service under load, over its real gRPC path:
//! `cargo run --release -p smi-benches --bin control [-- --quick]`.
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
//!
//! The modules: `service` (the control service in its child process, and the handle this
//! process holds: enrollment, its memory, its admin API), then one per phase: `enrollment`
//! (certificates per second), `fanout` (fan-out and memory per subscriber), `ingest` (report
//! ingest and memory per series).

mod enrollment;
mod fanout;
mod ingest;
mod service;

use std::time::Duration;

use enrollment::certificates_per_second;
use fanout::fan_out;
use ingest::ingest;
use service::{Control, serve_role};

const ROLE: &str = "SMI_BENCH_ROLE";

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if std::env::var_os(ROLE).is_some() {
        return runtime.block_on(serve_role());
    }
    let quick = std::env::args().any(|a| a == "--quick");
    runtime.block_on(run(quick))
}

async fn run(quick: bool) -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let control = Control::start(dir.path())?;
    let rounds = if quick { 3 } else { 5 };
    let window = Duration::from_secs(if quick { 1 } else { 3 });
    println!("# smi-control under load ({rounds} rounds; median [min-max])");

    let certs = certificates_per_second(&control, rounds, window).await?;
    let sizes: &[usize] = if quick { &[1_000] } else { &[10_000, 1_000] };
    let mut fanouts = Vec::new();
    for &n in sizes {
        fanouts.push(fan_out(&control, n, rounds).await?);
    }
    let ingested = ingest(
        &control,
        rounds,
        Duration::from_secs(if quick { 2 } else { 5 }),
    )
    .await?;
    control.stop();

    let mut summary = format!(
        "control: certs_per_s={:.0} certs_vs_one_core_signing={:.2}",
        certs.grpc, certs.ratio
    );
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
    summary.push_str(&format!(
        " reports_per_s={:.0} reports_vs_one_core_ingest={:.2} first_reports_per_s={:.0} rss_bytes_per_series={} store_bytes_per_series={} store_bytes_per_series_1h={}",
        ingested.steady,
        ingested.ratio,
        ingested.first,
        ingested.rss_per_series,
        ingested.store_per_series,
        ingested.store_per_series_hour,
    ));
    println!("{summary}");
    Ok(())
}
