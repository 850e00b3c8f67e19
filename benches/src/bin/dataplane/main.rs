//! The data plane side by side:
//! `cargo run --release -p smi-benches --bin dataplane [-- [--quick] [--main-only]]`.
//!
//! One server process (this binary re-executed in the `server` role, pinned to CPU 0) serves the
//! same axum app (1 KiB responses, and a tonic Greeter) three ways; this process is the load
//! generator (one thread, pinned to CPU 1):
//! - **A**: plain HTTP/2 over TCP (hyper, h2c): the floor.
//! - **B**: HTTP/2 over rustls mTLS (TLS 1.3, P-256, the mesh's certificates), no mesh layers.
//! - **C**: the full mesh on both sides: `MeshClient` (a 3-way TrafficSplit, p2c, pooled mTLS,
//!   SPIFFE ID check, metrics) to `smi_server::serve` + `AuthorizeLayer` (100 TrafficTargets
//!   loaded, metrics).
//! - **D**: the sidecar model: the same plain client and server as A, through a pair of HAProxy
//!   proxies with mTLS (h2) between them (certificates from the same control service). Skipped,
//!   with a message, when `haproxy` is not installed (Debian: `apt-get install haproxy`).
//!
//! Each round runs the variants in turn (interleaved) in three modes: saturation (64 requests in
//! flight on one HTTP/2 connection, closed loop), one request at a time (latency per request),
//! and two fixed rates (open loop at 1/8 and 1/4 of A's saturation rate, measured at warm-up;
//! `run` says why not 1/2). gRPC unary
//! calls over tonic are measured for A, B and C in the first two modes. At saturation, the CPU
//! time of every process on the path (generator, server, sidecars) is divided by the requests
//! served: the CPU cost of one request, end to end. The control service runs
//! in this process and is idle while measuring. After the rounds, the cost model (`costs`):
//! system calls and context switches per request of the server and of the generator, counted by
//! `perf` in one more window per variant, rustls' own cost per request in memory, and the cost
//! of one write through loopback TCP. The main section's last line, for scripts:
//! `ratios: C/B=<x> C/D=<y> C-A_p50_us=<z> C/B_p99=<w> C/A=<v>` (throughput, throughput, added
//! latency one request at a time, fixed-rate p99, throughput).
//!
//! Then the extra scenarios (`scenarios`: response sizes, many clients, new connections, gRPC
//! streaming, memory per idle connection), each with its table and a ratio line of its own
//! (`sizes: ...`). `--main-only` skips them; `--quick` shortens them too.

mod call;
mod costs;
mod cpu;
mod greeter;
mod load;
mod scenarios;
mod server;
mod sidecars;
mod table;

use std::net::SocketAddr;
use std::time::Duration;

use smi_benches::stats::{median, spread};
use smi_client::{Mesh, MeshClient};
use smi_test_util::{Control, LocalControl};
use tokio::net::TcpStream;

use call::{Call, Grpc, H2Channel, Http, h2};
use greeter::GreeterClient;
use load::Quantiles;
use server::{Endpoints, PATH};
use table::{print_rows, table};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    if std::env::var_os(server::ROLE).is_some() {
        // Pinned to one CPU: one worker thread, so that no two workers take turns on it.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        return runtime.block_on(server::role());
    }
    // The load generator: one thread (pinned to CPU 1 below), which the fixed-rate pacer shares
    // cooperatively with the requests it starts. (With a worker pool, the pacer would spin on the
    // main thread and the OS would take turns between it and the workers, in milliseconds.)
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--main-only` skips the extra scenarios (`scenarios`).
    let main_only = args.iter().any(|a| a == "--main-only");
    // `--only C` (or A, B, D) measures one variant, e.g. under a profiler.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    // `--rate N` sets the low open-loop rate (the high one is twice that) instead of deriving
    // them from A's saturation.
    let rate = args
        .iter()
        .position(|a| a == "--rate")
        .and_then(|i| args.get(i + 1))
        .map(|r| r.parse::<f64>())
        .transpose()?;
    runtime.block_on(run(quick, main_only, only, rate))
}

struct Variant {
    name: &'static str,
    call: Call,
    /// The processes on its path besides the generator and the server (the sidecars).
    proxies: Vec<u32>,
}

/// The figures of one variant, one value per round.
#[derive(Default)]
struct Figures {
    rps: Vec<f64>,
    /// CPU microseconds per request at saturation, all processes on the path.
    cpu_us: Vec<f64>,
    one: Vec<Quantiles>,
    /// At the low and the high fixed rate.
    fixed: [Vec<Quantiles>; 2],
}

impl Figures {
    fn pick(values: &[Quantiles], q: impl Fn(&Quantiles) -> f64) -> Vec<f64> {
        values.iter().map(q).collect()
    }
}

async fn tcp(addr: SocketAddr) -> Result<TcpStream, Error> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

async fn mtls(
    mesh: &Mesh,
    addr: SocketAddr,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Error> {
    Ok(tokio_rustls::TlsConnector::from(mesh.client_tls())
        .connect(
            rustls::pki_types::ServerName::IpAddress(addr.ip().into()),
            tcp(addr).await?,
        )
        .await?)
}

fn grpc_plain(
    sender: hyper::client::conn::http2::SendRequest<tonic::body::Body>,
    origin: String,
) -> Result<Call, Error> {
    Ok(Call::Grpc(Grpc::Plain(GreeterClient::with_origin(
        H2Channel(sender),
        origin.parse()?,
    ))))
}

async fn run(
    quick: bool,
    main_only: bool,
    only: Option<String>,
    rate: Option<f64>,
) -> Result<(), Error> {
    let (rounds, window) = if quick {
        (3, Duration::from_millis(1200))
    } else {
        (5, Duration::from_secs(3))
    };
    let mut control = LocalControl::start(&[("policy.yaml", &server::policy())]).await;
    let (mut server, addrs) = server::start(&control, Endpoints::Registered).await?;
    let [a_addr, b_addr, _] = addrs;

    let client_mesh = control.mesh("bench/client", &[], &["bench/data"]).await;
    let mut changes = client_mesh.changed();
    while ["data-v1", "data-v2", "data-v3"]
        .iter()
        .any(|s| client_mesh.policy().endpoints("bench", s).is_empty())
    {
        tokio::time::timeout(Duration::from_secs(10), changes.changed()).await??;
    }

    let get = |client, uri: String| Call::Get {
        client,
        uri: uri.into(),
    };
    let mut http = vec![
        Variant {
            name: "A plain h2c",
            call: get(
                Http::Plain(h2(tcp(a_addr).await?).await?),
                format!("http://{a_addr}{PATH}"),
            ),
            proxies: Vec::new(),
        },
        Variant {
            name: "B rustls mTLS",
            call: get(
                Http::Plain(h2(mtls(&client_mesh, b_addr).await?).await?),
                format!("https://{b_addr}{PATH}"),
            ),
            proxies: Vec::new(),
        },
        Variant {
            name: "C mesh",
            call: get(
                Http::Mesh(MeshClient::new(client_mesh.clone())),
                format!("http://data.bench{PATH}"),
            ),
            proxies: Vec::new(),
        },
    ];
    let mut grpc = vec![
        Variant {
            name: "A plain h2c",
            call: grpc_plain(h2(tcp(a_addr).await?).await?, format!("http://{a_addr}"))?,
            proxies: Vec::new(),
        },
        Variant {
            name: "B rustls mTLS",
            call: grpc_plain(
                h2(mtls(&client_mesh, b_addr).await?).await?,
                format!("https://{b_addr}"),
            )?,
            proxies: Vec::new(),
        },
        Variant {
            name: "C mesh",
            call: Call::Grpc(Grpc::Mesh(GreeterClient::with_origin(
                MeshClient::new(client_mesh.clone()),
                "http://data.bench".parse()?,
            ))),
            proxies: Vec::new(),
        },
    ];
    let sidecar_dir = tempfile::tempdir()?;
    let haproxy = sidecars::installed();
    let (d_addr, _sidecars) = if haproxy {
        let (d_addr, processes) = sidecars::start(&control, sidecar_dir.path(), a_addr).await?;
        http.push(Variant {
            name: "D HAProxy pair",
            proxies: processes.iter().filter_map(|p| p.id()).collect(),
            call: get(
                Http::Plain(h2(tcp(d_addr).await?).await?),
                format!("http://{d_addr}{PATH}"),
            ),
        });
        (Some(d_addr), processes)
    } else {
        (None, Vec::new())
    };
    if let Some(only) = &only {
        http.retain(|v| v.name.starts_with(only.as_str()));
        grpc.retain(|v| v.name.starts_with(only.as_str()));
        if http.is_empty() {
            return Err(format!("--only {only}: no such variant (A, B, C, D)").into());
        }
    }

    // Warm up every path (connections, pools, caches); A's saturation sets the fixed rates.
    for v in http.iter().chain(&grpc) {
        load::saturation(&v.call, Duration::from_millis(300)).await?;
    }
    let base = match rate {
        Some(rate) => rate * 8.0,
        None if http[0].name.starts_with('A') => load::saturation(&http[0].call, window).await?,
        None => 160_000.0,
    };
    // Open-loop requests go out one by one: they lose the batching that 64 requests in flight
    // get in the closed loop (several frames per write and per wake-up). Measured here, at half
    // of A's closed-loop rate B is at its limit (p99 in milliseconds) and C beyond it, so the
    // figures would only show queues growing. The low rate is one every variant but D sustains;
    // the high rate shows where each starts to fall behind.
    let rates = [base / 8.0, base / 4.0].map(|r| (r / 1000.0).round() * 1000.0);

    let mut figures: Vec<Figures> = http.iter().map(|_| Figures::default()).collect();
    let mut grpc_figures: Vec<Figures> = grpc.iter().map(|_| Figures::default()).collect();
    let server_pid = server.id().ok_or("the server exited")?;
    let measure = async |v: &Variant, f: &mut Figures, window: Duration| -> Result<(), Error> {
        let pids: Vec<u32> = [std::process::id(), server_pid]
            .into_iter()
            .chain(v.proxies.iter().copied())
            .collect();
        let before = cpu::seconds(&pids);
        let rps = load::saturation(&v.call, window).await?;
        let requests = rps * window.as_secs_f64();
        if let (Some(before), Some(after)) = (before, cpu::seconds(&pids)) {
            f.cpu_us.push((after - before) / requests * 1e6);
        }
        f.rps.push(rps);
        Ok(())
    };
    for _ in 0..rounds {
        for (v, f) in http.iter().zip(&mut figures) {
            measure(v, f, window).await?;
            f.one.push(load::one_at_a_time(&v.call, window / 2).await?);
            for (rate, fixed) in rates.iter().zip(&mut f.fixed) {
                fixed.push(load::fixed_rate(&v.call, *rate, window / 2).await?);
            }
        }
        for (v, f) in grpc.iter().zip(&mut grpc_figures) {
            measure(v, f, window * 3 / 4).await?;
            f.one
                .push(load::one_at_a_time(&v.call, window * 3 / 8).await?);
        }
    }

    println!(
        "# data plane, {rounds} rounds, {window:?} saturation windows; median [min-max] of rounds; latencies in us"
    );
    println!("# HTTP/2 GET, 1 KiB responses");
    table(
        &[
            "variant",
            "req/s (64 in flight)",
            "CPU us/req",
            "1-at-a-time p50",
            "1-at-a-time p99",
        ],
        http.iter().zip(&figures).map(|(v, f)| {
            [
                v.name.to_owned(),
                spread(&f.rps, 0),
                spread(&f.cpu_us, 1),
                spread(&Figures::pick(&f.one, |q| q.p50), 0),
                spread(&Figures::pick(&f.one, |q| q.p99), 0),
            ]
        }),
    );
    if !haproxy {
        println!(
            "D HAProxy pair: skipped, haproxy is not installed (Debian: apt-get install haproxy)"
        );
    }
    costs_table(&http, server_pid, window, &client_mesh).await?;
    for (i, rate) in rates.iter().enumerate() {
        println!(
            "# HTTP/2 GET, fixed rate {rate:.0} req/s (open loop, latency from the scheduled start)"
        );
        table(
            &["variant", "p50", "p99", "p99.9"],
            http.iter().zip(&figures).map(|(v, f)| {
                [
                    v.name.to_owned(),
                    spread(&Figures::pick(&f.fixed[i], |q| q.p50), 0),
                    spread(&Figures::pick(&f.fixed[i], |q| q.p99), 0),
                    spread(&Figures::pick(&f.fixed[i], |q| q.p999), 0),
                ]
            }),
        );
    }
    println!("# gRPC unary (tonic Greeter.SayHello)");
    table(
        &[
            "variant",
            "calls/s (64 in flight)",
            "CPU us/req",
            "1-at-a-time p50",
            "1-at-a-time p99",
        ],
        grpc.iter().zip(&grpc_figures).map(|(v, f)| {
            [
                v.name.to_owned(),
                spread(&f.rps, 0),
                spread(&f.cpu_us, 1),
                spread(&Figures::pick(&f.one, |q| q.p50), 0),
                spread(&Figures::pick(&f.one, |q| q.p99), 0),
            ]
        }),
    );
    if only.is_none() {
        // Ratios per round (the variants of a round ran side by side), then their median.
        let ratio = |a: &[f64], b: &[f64]| {
            let r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
            median(&r)
        };
        let difference = |a: &[f64], b: &[f64]| {
            let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
            median(&d)
        };
        let p50 = |f: &Figures| Figures::pick(&f.one, |q| q.p50);
        let fixed_p99 = |f: &Figures, i: usize| Figures::pick(&f.fixed[i], |q| q.p99);
        let (a, b, c) = (&figures[0], &figures[1], &figures[2]);
        let (ga, gb, gc) = (&grpc_figures[0], &grpc_figures[1], &grpc_figures[2]);
        println!(
            "grpc: C/B={:.2} C/A={:.2} C-A_p50_us={:.1}; high rate: C/B_p99={:.2}",
            ratio(&gc.rps, &gb.rps),
            ratio(&gc.rps, &ga.rps),
            difference(&p50(gc), &p50(ga)),
            ratio(&fixed_p99(c, 1), &fixed_p99(b, 1)),
        );
        let c_over_d = match figures.get(3) {
            Some(d) => format!("{:.2}", ratio(&c.rps, &d.rps)),
            None => "skipped".to_owned(),
        };
        println!(
            "ratios: C/B={:.2} C/D={c_over_d} C-A_p50_us={:.1} C/B_p99={:.2} C/A={:.2}",
            ratio(&c.rps, &b.rps),
            difference(&p50(c), &p50(a)),
            ratio(&fixed_p99(c, 0), &fixed_p99(b, 0)),
            ratio(&c.rps, &a.rps),
        );
    }
    if !main_only {
        let sidecars = d_addr
            .zip(http.iter().find(|v| v.name.starts_with('D')))
            .map(|(d, v)| (d, v.proxies.clone()));
        scenarios::run(&scenarios::Setup {
            control: &control,
            client: &client_mesh,
            addrs,
            server_pid,
            sidecars,
            quick,
            only: only.as_deref(),
        })
        .await?;
    }
    drop(server.stdin.take());
    let _ = tokio::time::timeout(Duration::from_secs(5), server.wait()).await;
    control.shutdown().await;
    Ok(())
}

/// Where a request's cost goes at saturation (the cost model): system calls by kind and
/// context switches per request of the server and of the generator (A, B and C; D's sidecars
/// are processes of their own), counted in one more saturation window per variant, and rustls'
/// own cost for one request and response with no socket (the floor under B and C).
async fn costs_table(
    http: &[Variant],
    server_pid: u32,
    window: Duration,
    mesh: &Mesh,
) -> Result<(), Error> {
    use costs::{EVENTS, Perf};
    println!(
        "# cost per request at saturation, counted by perf in a window of its own: server | generator"
    );
    let mut rows = Vec::new();
    for v in http.iter().filter(|v| v.proxies.is_empty()) {
        let (Some(server), Some(generator)) =
            (Perf::start(server_pid), Perf::start(std::process::id()))
        else {
            println!("skipped: perf cannot count here (Debian: apt-get install linux-perf)");
            break;
        };
        let cpu_before = [server_pid, std::process::id()].map(|p| cpu::seconds(&[p]));
        let rps = load::saturation(&v.call, window).await?;
        let requests = rps * window.as_secs_f64();
        let cpu_after = [server_pid, std::process::id()].map(|p| cpu::seconds(&[p]));
        let cpu_us: Vec<String> = cpu_before
            .iter()
            .zip(&cpu_after)
            .map(|(b, a)| match (b, a) {
                (Some(b), Some(a)) => format!("{:.1}", (a - b) / requests * 1e6),
                _ => "-".to_owned(),
            })
            .collect();
        let (Some(server), Some(generator)) = (server.stop(), generator.stop()) else {
            println!("skipped: perf gave no counts");
            break;
        };
        let mut row = vec![v.name.to_owned()];
        for (counts, cpu_us) in [server, generator].iter().zip(cpu_us) {
            row.push(cpu_us);
            row.extend(counts.iter().map(|c| format!("{:.2}", c / requests)));
        }
        rows.push(row);
    }
    if !rows.is_empty() {
        let mut header = vec!["variant".to_owned()];
        for side in ["server", "generator"] {
            header.push(format!("{side} CPU us"));
            header.extend(EVENTS.iter().map(|(_, name)| format!("{side} {name}")));
        }
        print_rows(&header, &rows);
    }
    let floor = |batch| {
        costs::rustls_floor(
            mesh.client_tls(),
            mesh.server_tls().load_full(),
            costs::REQUEST_BYTES,
            costs::RESPONSE_BYTES,
            batch,
        )
    };
    println!(
        "rustls in memory, both ends, one request ({} B) and response ({} B): {:.2} us with a record per message, {:.2} us with 64 messages per pass",
        costs::REQUEST_BYTES,
        costs::RESPONSE_BYTES,
        floor(1)?,
        floor(64)?,
    );
    println!(
        "one {} B write to a loopback TCP socket (a reader draining it): {:.2} us",
        costs::RESPONSE_BYTES,
        costs::loopback_write_us(costs::RESPONSE_BYTES)?,
    );
    Ok(())
}
