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

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use smi_benches::stats::{median, spread};
use smi_client::control::{ControlAddr, Credentials, connect, enroll};
use smi_control::ca::CaStore;
use smi_core::ServiceAccount;
use smi_core::proto::v1::{self, control_client::ControlClient};
use smi_core::telemetry::sketch::bin_of;
use smi_test_util::{TokenSpec, mint_token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tonic::transport::Channel;

const ROLE: &str = "SMI_BENCH_ROLE";
const TRUST_DOMAIN: &str = "cluster.local";
const ACCESS: &str = include_str!("../../../examples/bookstore/policy/bookstore-access.yaml");
const STREAMS_PER_CONNECTION: usize = 100;
const WAIT: Duration = Duration::from_secs(30);

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

/// The child: one control service; prints its address, stops when stdin closes.
async fn serve_role() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (Some(policy), Some(state)) = (args.next(), args.next()) else {
        return Err("serve role: expected <policy-dir> <state-dir>".into());
    };
    let running = smi_control::serve::start(smi_control::serve::ServeConfig {
        policy_dir: policy.into(),
        state_dir: state.into(),
        listen: "127.0.0.1:0".parse()?,
        admin: "127.0.0.1:0".parse()?,
        ..Default::default()
    })
    .await?;
    println!("ready {} {}", running.api_addr, running.admin_addr);
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    })
    .await?;
    running.shutdown().await;
    Ok(())
}

struct Control {
    child: Child,
    addr: ControlAddr,
    admin: SocketAddr,
    policy: PathBuf,
    state: PathBuf,
    ca: smi_control::ca::Authority,
}

impl Control {
    fn start(dir: &Path) -> Result<Self, Error> {
        let policy = dir.join("policy");
        let state = dir.join("state");
        std::fs::create_dir_all(&policy)?;
        std::fs::write(policy.join("access.yaml"), ACCESS)?;
        write_split(&policy, 50)?;
        let ca = CaStore::new(&state).open_or_init(TRUST_DOMAIN)?;
        let mut child = Command::new(std::env::current_exe()?)
            .env(ROLE, "serve")
            .arg(&policy)
            .arg(&state)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("child stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let (addr, admin) = line
            .strip_prefix("ready ")
            .and_then(|rest| rest.trim().split_once(' '))
            .ok_or_else(|| format!("the control service did not start: {line:?}"))?;
        Ok(Self {
            addr: ControlAddr::parse(addr)?,
            admin: admin.parse()?,
            child,
            policy,
            state,
            ca,
        })
    }

    /// A token that enrolls without limit: each Certify task reuses its own (each use is
    /// counted, on disk, as in production).
    fn token(&self, identity: &str) -> Result<String, Error> {
        let identity: ServiceAccount = identity.parse()?;
        let spec = TokenSpec {
            ttl: Duration::from_secs(3600),
            uses: u32::MAX,
        };
        Ok(mint_token(&self.state, &identity, &[], spec).token)
    }

    async fn channel(&self, identity: &str) -> Result<(Credentials, Channel), Error> {
        let creds = enroll(&self.addr, &self.token(identity)?).await?;
        let channel = connect(&self.addr, &creds).await?;
        Ok((creds, channel))
    }

    /// Resident memory of the control process, bytes.
    fn rss(&self) -> Result<u64, Error> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .ok_or("VmRSS not found")?;
        Ok(kib * 1024)
    }

    /// `GET path` on the control's admin API: the whole response, head and body.
    async fn admin_get(&self, path: &str) -> Result<String, Error> {
        let mut stream = tokio::net::TcpStream::connect(self.admin).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await?;
        if !text.starts_with("HTTP/1.1 200") {
            let status = text.lines().next().unwrap_or_default().to_owned();
            return Err(format!("GET {path}: {status}").into());
        }
        Ok(text)
    }

    /// A gauge or counter of the control's admin `/metrics`.
    async fn metric(&self, name: &str) -> Result<u64, Error> {
        let text = self.admin_get("/metrics").await?;
        let prefix = format!("{name} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("{name} not in /metrics").into())
    }

    fn stop(mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let _ = self.child.wait();
    }
}

fn write_split(policy: &Path, v1_weight: u64) -> std::io::Result<()> {
    let split = format!(
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata:\n  name: bookstore-split\n  namespace: bookstore\nspec:\n  service: bookstore.bookstore.svc.cluster.local\n  backends:\n  - service: bookstore-v1\n    weight: {v1_weight}\n  - service: bookstore-v2\n    weight: {}\n",
        100 - v1_weight
    );
    // Write and rename, as an editor or a config tool would, so the reload never sees half a file.
    let tmp = policy.join(".split.yaml.tmp");
    std::fs::write(&tmp, split)?;
    std::fs::rename(tmp, policy.join("split.yaml"))
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

struct CertRate {
    grpc: f64,
    ratio: f64,
}

async fn certificates_per_second(
    control: &Control,
    rounds: usize,
    window: Duration,
) -> Result<CertRate, Error> {
    // CSRs made up front: key generation is the workload's cost, not the control's.
    let csrs: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..256)
            .map(|_| -> Result<Vec<u8>, Error> {
                let key = rcgen::KeyPair::generate()?;
                Ok(rcgen::CertificateParams::default()
                    .serialize_request(&key)?
                    .der()
                    .to_vec())
            })
            .collect::<Result<_, _>>()?,
    );
    let mut channels = Vec::new();
    for i in 0..4 {
        channels.push(control.channel(&format!("bench/certify-{i}")).await?.1);
    }
    // One token per task, as workloads enrolling at once each have their own: each use is
    // counted on disk, and a token's uses are counted one at a time.
    let tokens: Vec<Arc<String>> = (0..64)
        .map(|i| control.token(&format!("bench/workload-{i}")).map(Arc::new))
        .collect::<Result<_, _>>()?;
    let identity: ServiceAccount = "bench/workload".parse()?;

    let (mut grpc, mut local, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        // Baseline: the same signing in this process, one core, no network.
        let started = Instant::now();
        let mut signed = 0u64;
        while started.elapsed() < window {
            let csr = &csrs[signed as usize % csrs.len()];
            control
                .ca
                .issue_workload(csr, &identity, &[], Duration::from_secs(3600))?;
            signed += 1;
        }
        let one_core = signed as f64 / started.elapsed().as_secs_f64();

        let issued = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let deadline = started + window;
        let mut tasks = Vec::new();
        for i in 0..64 {
            let mut client = ControlClient::new(channels[i % channels.len()].clone());
            let (csrs, token) = (csrs.clone(), tokens[i].clone());
            let (issued, failed) = (issued.clone(), failed.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = i;
                while Instant::now() < deadline {
                    let request = v1::CertifyRequest {
                        csr_der: csrs[n % csrs.len()].clone(),
                        token: token.to_string(),
                        names: None,
                    };
                    match client.certify(request).await {
                        Ok(_) => issued.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    n += 64;
                }
            }));
        }
        for t in tasks {
            t.await?;
        }
        let failed = failed.load(Ordering::Relaxed);
        if failed > 0 {
            return Err(format!("{failed} Certify calls failed").into());
        }
        let rate = issued.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
        grpc.push(rate);
        local.push(one_core);
        ratios.push(rate / one_core);
    }
    println!(
        "certificates/s over gRPC (64 in flight): {}; in-process signing, one core: {}; ratio {}",
        spread(&grpc, 0),
        spread(&local, 0),
        spread(&ratios, 2)
    );
    Ok(CertRate {
        grpc: median(&grpc),
        ratio: median(&ratios),
    })
}

struct FanOut {
    subscribers: usize,
    /// From the first subscriber's receipt to the last's: the fan-out itself.
    span_ms: f64,
    /// From the file write to the last receipt (includes the watch's debounce and the reload).
    last_ms: f64,
    added_ms: f64,
    bytes_per_subscriber: u64,
}

/// Each subscriber reports (its index, the v1 weight it saw) for every update it receives.
type Receipts = mpsc::UnboundedReceiver<(usize, u64, Instant)>;

async fn subscribe(
    control: &Control,
    n: usize,
    first_index: usize,
    receipts: &mpsc::UnboundedSender<(usize, u64, Instant)>,
) -> Result<Subscribers, Error> {
    let mut tasks = Vec::new();
    let mut opened = 0;
    let mut connection = 0;
    while opened < n {
        let (_creds, channel) = control
            .channel(&format!("bench/subscriber-{}", first_index + connection))
            .await?;
        connection += 1;
        let batch = STREAMS_PER_CONNECTION.min(n - opened);
        for _ in 0..batch {
            let index = first_index + opened;
            opened += 1;
            let mut stream = ControlClient::new(channel.clone())
                .watch(v1::WatchRequest {
                    services: vec!["bookstore/bookstore".into()],
                    workload: format!("bench-{index}"),
                })
                .await?
                .into_inner();
            let receipts = receipts.clone();
            tasks.push(tokio::spawn(async move {
                while let Ok(Some(update)) = stream.message().await {
                    let _ = receipts.send((index, v1_weight(&update), Instant::now()));
                }
            }));
        }
    }
    Ok(Subscribers(tasks))
}

/// Open Watch streams; dropping this closes them.
struct Subscribers(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Subscribers {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

fn v1_weight(update: &v1::PolicyUpdate) -> u64 {
    update
        .policy
        .as_ref()
        .and_then(|p| p.traffic_splits.first())
        .and_then(|s| s.backends.iter().find(|b| b.service == "bookstore-v1"))
        .map_or(0, |b| b.weight)
}

/// Waits until each of `n` subscribers has seen weight `weight`; returns the first and last
/// receipt times.
async fn receipts_of(
    receipts: &mut Receipts,
    n: usize,
    weight: u64,
) -> Result<(Instant, Instant), Error> {
    let mut seen = vec![false; n];
    let (mut count, mut first, mut last) = (0, None, None);
    tokio::time::timeout(WAIT, async {
        while count < n {
            let Some((index, w, at)) = receipts.recv().await else {
                break;
            };
            if w == weight && index < n && !seen[index] {
                seen[index] = true;
                count += 1;
                first = first.or(Some(at));
                last = Some(at);
            }
        }
    })
    .await
    .map_err(|_| format!("only {count} of {n} subscribers saw the change within {WAIT:?}"))?;
    match (first, last) {
        (Some(first), Some(last)) if count == n => Ok((first, last)),
        _ => Err("the subscribers' streams ended".into()),
    }
}

async fn fan_out(control: &Control, n: usize, rounds: usize) -> Result<FanOut, Error> {
    write_split(&control.policy, 50)?;
    // The single-subscriber baseline (index 0), then the N (index 0 included, so N in all).
    let (single_tx, mut single) = mpsc::unbounded_channel();
    let _single = subscribe(control, 1, 0, &single_tx).await?;
    receipts_of(&mut single, 1, 50).await?;

    let rss_before = control.rss()?;
    let (tx, mut receipts) = mpsc::unbounded_channel();
    let opened = Instant::now();
    let subscribers = subscribe(control, n, 0, &tx).await?;
    receipts_of(&mut receipts, n, 50).await?;
    let open_s = opened.elapsed().as_secs_f64();
    let rss_after = control.rss()?;
    let bytes_per_subscriber = rss_after.saturating_sub(rss_before) / n as u64;

    let (mut lasts, mut firsts, mut spans, mut singles, mut added) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let weight = 51 + round as u64;
        let written = Instant::now();
        write_split(&control.policy, weight)?;
        let (_, single_last) = receipts_of(&mut single, 1, weight).await?;
        let (first, last) = receipts_of(&mut receipts, n, weight).await?;
        let ms = |t: Instant| t.duration_since(written).as_secs_f64() * 1e3;
        lasts.push(ms(last));
        firsts.push(ms(first));
        spans.push(ms(last) - ms(first));
        singles.push(ms(single_last));
        added.push(ms(last) - ms(single_last));
    }
    println!(
        "fan-out to {n} subscribers ({} connections; opened in {open_s:.1} s): write->first {} ms, write->last {} ms, first->last {} ms; one subscriber write->receipt {} ms; last(N)-last(1) {} ms; control RSS +{} KiB = {} bytes/subscriber",
        n.div_ceil(STREAMS_PER_CONNECTION),
        spread(&firsts, 1),
        spread(&lasts, 1),
        spread(&spans, 1),
        spread(&singles, 1),
        spread(&added, 1),
        rss_after.saturating_sub(rss_before) / 1024,
        bytes_per_subscriber,
    );
    drop(subscribers);
    Ok(FanOut {
        subscribers: n,
        span_ms: median(&spans),
        last_ms: median(&lasts),
        added_ms: median(&added),
        bytes_per_subscriber,
    })
}

// === report ingest ===

/// Simulated workloads, the identities they share, and the reports in flight.
const REPORTERS: usize = 10_000;
const REPORTER_IDENTITIES: usize = 100;
const REPORTS_IN_FLIGHT: usize = 256;
/// Latency bins per edge, as an edge with a few hundred requests in 5 s has.
const BINS_PER_EDGE: usize = 50;
/// At most this many slots a series holds over an hour (60 of 5 s, 61 of 1 min).
const SLOTS_PER_HOUR: u64 = 121;

struct Ingested {
    first: f64,
    steady: f64,
    ratio: f64,
    rss_per_series: u64,
    store_per_series: u64,
    store_per_series_hour: u64,
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

async fn ingest(control: &Control, rounds: usize, window: Duration) -> Result<Ingested, Error> {
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
