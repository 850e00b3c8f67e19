//! The control on etcd (`--only etcd`): a 3-member etcd cluster, three replicas over one prefix
//! and one replica over another (its own mesh on the same cluster), against the control on
//! files (the [`Control`] process the other phases use), interleaved round by round:
//!
//! - what one etcd put and one linearizable read cost here, and etcd's own WAL fsync times;
//! - fan-out: N Watch streams on each of the three (spread round robin over the three
//!   replicas), all open at once; each round changes the TrafficSplit on each in turn (a key
//!   put; a file rename) and times the first and last receipts from the write;
//! - certificates per second: 64 Certify calls in flight on each in turn, and the CPU time of
//!   every process (this one, the file control's, etcd's) per certificate.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use smi_benches::stats::{median, spread};
use smi_control::etcd::{EtcdClient, SealKey};
use smi_control::store_runtime::StoreRuntime;
use smi_test_util::etcd::EtcdCluster;

use crate::enrollment::{CONNECTIONS, Certifiers, IN_FLIGHT, Issued, csrs};
use crate::fanout::{Audience, Rounds, connections_for};
use crate::host::{Disk, etcd_pids, fd_limit, machine_busy};
use crate::replicas::EtcdMesh;
use crate::service::{Control, Target};
use crate::{Error, cpu};

/// Outside both meshes' prefixes: the put-cost probe changes nothing they watch.
const PROBE_KEY: &[u8] = b"/smi-bench-probe/put";
const PROBES: usize = 50;

/// The three variants, in the order each round runs them.
enum Variant<'a> {
    Etcd(&'a EtcdMesh),
    Files(&'a Control),
}

impl Variant<'_> {
    fn name(&self) -> String {
        match self {
            Variant::Etcd(mesh) if mesh.replicas() == 1 => "etcd, 1 replica".into(),
            Variant::Etcd(mesh) => format!("etcd, {} replicas", mesh.replicas()),
            Variant::Files(_) => "files, 1 control".into(),
        }
    }

    /// Certify connections: 4 on one control, as the certificates phase has; on n replicas
    /// ceil(4 / n) to each (on three, 2 each: 6 in all), so that each gets the same.
    fn connections(&self) -> usize {
        let replicas = self.addrs().len();
        CONNECTIONS.div_ceil(replicas) * replicas
    }
}

impl Target for Variant<'_> {
    fn addrs(&self) -> &[smi_client::control::ControlAddr] {
        match self {
            Variant::Etcd(mesh) => mesh.addrs(),
            Variant::Files(control) => control.addrs(),
        }
    }

    fn token(&self, identity: &str) -> Result<String, Error> {
        match self {
            Variant::Etcd(mesh) => mesh.token(identity),
            Variant::Files(control) => Target::token(*control, identity),
        }
    }

    async fn set_split(&self, v1_weight: u64) -> Result<(), Error> {
        match self {
            Variant::Etcd(mesh) => mesh.set_split(v1_weight).await,
            Variant::Files(control) => control.set_split(v1_weight).await,
        }
    }
}

/// Medians of the section, for the summary line; `[3 replicas, 1 replica, files]`.
pub struct EtcdRun {
    pub subscribers: usize,
    pub put_ms: f64,
    pub get_ms: f64,
    pub fsync_ms: f64,
    pub first_ms: [f64; 3],
    pub last_ms: [f64; 3],
    pub span_ms: [f64; 3],
    pub certs: [f64; 3],
    pub cpu_us_per_cert: [f64; 3],
}

pub async fn etcd(
    files: &Control,
    subscribers: usize,
    rounds: usize,
    window: Duration,
) -> Result<EtcdRun, Error> {
    let started = Instant::now();
    let cluster = EtcdCluster::start(3).await;
    let endpoints = cluster.endpoints_arg();
    let members: Vec<SocketAddr> = cluster
        .client_urls()
        .iter()
        .map(|url| url.trim_start_matches("http://").parse())
        .collect::<Result<_, _>>()?;
    let dir = tempfile::tempdir()?;
    let seal_key = dir.path().join("seal.key");
    SealKey::create_file(&seal_key)?;
    let three = EtcdMesh::start(
        &endpoints,
        "/smi-bench-3/",
        &seal_key,
        3,
        &dir.path().join("policy-3"),
    )
    .await?;
    let one = EtcdMesh::start(
        &endpoints,
        "/smi-bench-1/",
        &seal_key,
        1,
        &dir.path().join("policy-1"),
    )
    .await?;
    println!(
        "etcd: a 3-member cluster (etcd's defaults: each write fsynced; heartbeat 50 ms), meshes {} (3 replicas) and {} (1 replica), started in {:.1} s",
        three.prefix,
        one.prefix,
        started.elapsed().as_secs_f64()
    );

    let disk_before = Disk::read(&members).await?;
    let (puts, gets) = probe(three.client()).await?;
    let disk = Disk::read(&members).await?.since(disk_before);
    println!(
        "etcd: one put {} ms, one linearizable get {} ms ({PROBES} in turn, one client); WAL fsync {:.2} ms mean over {} fsyncs (3 members), backend commit {:.2} ms mean",
        spread(&puts, 2),
        spread(&gets, 2),
        disk.fsync_ms(),
        disk.fsyncs,
        disk.commit_ms(),
    );
    let etcd_pids = etcd_pids()?;
    let (cpu_before, disk_before) = (cpu::seconds(&etcd_pids), Disk::read(&members).await?);
    let busy = busy_puts(three.client(), window).await?;
    let etcd_cpu = cpu::seconds(&etcd_pids).zip(cpu_before).map(|(a, b)| a - b);
    let busy_disk = Disk::read(&members).await?.since(disk_before);
    println!(
        "etcd: {IN_FLIGHT} puts in flight (one client) for {window:?}: {:.0} puts/s; etcd CPU {:.0} us/put; {:.2} WAL fsyncs (3 members) per put, {:.2} ms mean",
        busy.per_second,
        etcd_cpu.unwrap_or(f64::NAN) / busy.count.max(1) as f64 * 1e6,
        busy_disk.fsyncs / busy.count.max(1) as f64,
        busy_disk.fsync_ms(),
    );

    let variants = [
        Variant::Etcd(&three),
        Variant::Etcd(&one),
        Variant::Files(files),
    ];
    let fanout = fan_out(&variants, subscribers, rounds).await?;
    let certs = certificates(&variants, &members, files, rounds, window).await?;

    three.stop().await?;
    one.stop().await?;
    drop(cluster);
    println!(
        "etcd section: {:.0} s in all",
        started.elapsed().as_secs_f64()
    );
    let each =
        |f: &dyn Fn(&Rounds) -> Vec<f64>| -> [f64; 3] { [0, 1, 2].map(|i| median(&f(&fanout[i]))) };
    Ok(EtcdRun {
        subscribers,
        put_ms: median(&puts),
        get_ms: median(&gets),
        fsync_ms: disk.fsync_ms(),
        first_ms: each(&Rounds::firsts),
        last_ms: each(&Rounds::lasts),
        span_ms: each(&Rounds::spans),
        certs: [0, 1, 2].map(|i| median(&certs[i].rates)),
        cpu_us_per_cert: [0, 1, 2].map(|i| median(&certs[i].cpu_us)),
    })
}

/// Puts (then reads) one key outside the meshes, one request at a time; ms each.
async fn probe(
    (runtime, client): (&StoreRuntime, &EtcdClient),
) -> Result<(Vec<f64>, Vec<f64>), Error> {
    let client = client.clone();
    runtime
        .spawn(async move {
            let (mut puts, mut gets) = (Vec::new(), Vec::new());
            for i in 0..PROBES {
                let started = Instant::now();
                client.put(PROBE_KEY, i.to_string().as_bytes(), 0).await?;
                puts.push(started.elapsed().as_secs_f64() * 1e3);
                let started = Instant::now();
                client.get(PROBE_KEY).await?;
                gets.push(started.elapsed().as_secs_f64() * 1e3);
            }
            Ok::<_, Error>((puts, gets))
        })
        .await?
}

/// [`IN_FLIGHT`] puts at a time on one client, for `window`: what etcd sustains.
async fn busy_puts(
    (runtime, client): (&StoreRuntime, &EtcdClient),
    window: Duration,
) -> Result<Issued, Error> {
    let started = Instant::now();
    let deadline = started + window;
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|i| {
            let client = client.clone();
            runtime.spawn(async move {
                let key = format!("/smi-bench-probe/busy-{i}");
                let mut count = 0u64;
                while Instant::now() < deadline {
                    client
                        .put(key.as_bytes(), count.to_string().as_bytes(), 0)
                        .await?;
                    count += 1;
                }
                Ok::<_, Error>(count)
            })
        })
        .collect();
    let mut count = 0;
    for task in tasks {
        count += task.await??;
    }
    Ok(Issued {
        count,
        per_second: count as f64 / started.elapsed().as_secs_f64(),
    })
}

/// The three audiences open at once; round after round, each variant's change in turn.
async fn fan_out(
    variants: &[Variant<'_>; 3],
    n: usize,
    rounds: usize,
) -> Result<Vec<Rounds>, Error> {
    let mut audiences = Vec::new();
    for variant in variants {
        let mut audience = Audience::single(variant).await?;
        let open_s = audience.fill(variant, n).await?;
        println!(
            "etcd fan-out: {n} subscribers on {} ({} connections over {} address(es)) opened in {open_s:.1} s",
            variant.name(),
            connections_for(n),
            variant.addrs().len(),
        );
        audiences.push(audience);
    }
    // Every stream of the three at once: the client ends here, and the replicas' server ends.
    println!(
        "etcd fan-out: {} Watch streams open; this process holds {} file descriptors (limit {})",
        3 * n,
        std::fs::read_dir("/proc/self/fd")?.count(),
        fd_limit().unwrap_or_else(|| "unknown".into()),
    );
    let mut measured: Vec<Rounds> = variants.iter().map(|_| Rounds::default()).collect();
    for round in 0..rounds {
        for ((variant, audience), rounds) in variants.iter().zip(&mut audiences).zip(&mut measured)
        {
            rounds.push(audience.round(variant, 51 + round as u64).await?);
        }
    }
    drop(audiences);
    for (variant, rounds) in variants.iter().zip(&measured) {
        println!(
            "etcd fan-out to {n} on {}: write returned {} ms; {}",
            variant.name(),
            spread(&rounds.written(), 2),
            rounds.describe(),
        );
    }
    let ratio = |f: fn(&Rounds) -> Vec<f64>, a: usize, b: usize| {
        median(&f(&measured[a])) / median(&f(&measured[b]))
    };
    println!(
        "etcd fan-out ratios (medians): write->last 3 replicas/1 replica {:.2}, 1 replica/files {:.2}, 3 replicas/files {:.2}; first->last 3/1 {:.2}, 1/files {:.2}, 3/files {:.2}",
        ratio(Rounds::lasts, 0, 1),
        ratio(Rounds::lasts, 1, 2),
        ratio(Rounds::lasts, 0, 2),
        ratio(Rounds::spans, 0, 1),
        ratio(Rounds::spans, 1, 2),
        ratio(Rounds::spans, 0, 2),
    );
    Ok(measured)
}

#[derive(Default)]
struct CertRounds {
    rates: Vec<f64>,
    /// CPU of every process (this one, the file control's, etcd's members) per certificate.
    cpu_us: Vec<f64>,
    /// The share of those CPU seconds that were etcd's.
    etcd_share: Vec<f64>,
    /// CPU seconds of every process per wall second (2 = both cores busy).
    cores: Vec<f64>,
    /// The same for the whole machine (the other work on a shared machine included).
    machine: Vec<f64>,
}

async fn certificates(
    variants: &[Variant<'_>; 3],
    members: &[SocketAddr],
    files: &Control,
    rounds: usize,
    window: Duration,
) -> Result<Vec<CertRounds>, Error> {
    let csrs = csrs()?;
    let mut certifiers = Vec::new();
    for variant in variants {
        certifiers.push(Certifiers::new(variant, variant.connections(), csrs.clone()).await?);
    }
    let etcd_pids = etcd_pids()?;
    let mut all = vec![std::process::id(), files.pid()];
    all.extend(&etcd_pids);
    let cpu_of = |pids: &[u32]| cpu::seconds(pids).ok_or("CPU times not readable in /proc");

    let mut measured: Vec<CertRounds> = variants.iter().map(|_| CertRounds::default()).collect();
    let (mut etcd_issued, disk_before) = (0, Disk::read(members).await?);
    for _ in 0..rounds {
        for ((variant, certifiers), m) in variants.iter().zip(&certifiers).zip(&mut measured) {
            let (cpu_before, etcd_before) = (cpu_of(&all)?, cpu_of(&etcd_pids)?);
            let machine_before = machine_busy()?;
            let started = Instant::now();
            let Issued { count, per_second } = certifiers.run(window).await?;
            let wall = started.elapsed().as_secs_f64();
            let cpu = cpu_of(&all)? - cpu_before;
            let etcd = cpu_of(&etcd_pids)? - etcd_before;
            m.machine.push(machine_busy()?.cores_since(machine_before));
            m.rates.push(per_second);
            m.cpu_us.push(cpu / count.max(1) as f64 * 1e6);
            m.etcd_share.push(etcd / cpu.max(1e-9));
            m.cores.push(cpu / wall);
            if matches!(variant, Variant::Etcd(_)) {
                etcd_issued += count;
            }
        }
    }
    let disk = Disk::read(members).await?.since(disk_before);
    for (variant, m) in variants.iter().zip(&measured) {
        println!(
            "etcd certificates/s ({IN_FLIGHT} in flight, {} connections) on {}: {}; CPU of all processes {} us/certificate ({} of it etcd's), {} cores busy with them (the machine: {})",
            variant.connections(),
            variant.name(),
            spread(&m.rates, 0),
            spread(&m.cpu_us, 0),
            spread(&m.etcd_share, 2),
            spread(&m.cores, 2),
            spread(&m.machine, 2),
        );
    }
    let ratio = |a: usize, b: usize| median(&measured[a].rates) / median(&measured[b].rates);
    println!(
        "etcd certificates ratios (medians): 3 replicas/1 replica {:.2}, 1 replica/files {:.2}, 3 replicas/files {:.2}; etcd during the etcd windows: {:.2} WAL fsyncs (3 members) per certificate, {:.2} ms mean fsync",
        ratio(0, 1),
        ratio(1, 2),
        ratio(0, 2),
        disk.fsyncs / etcd_issued.max(1) as f64,
        disk.fsync_ms(),
    );
    Ok(measured)
}
