//! The data plane side by side: `cargo run --release -p smi-benches --bin dataplane [-- --quick]`.
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
//! in this process and is idle while measuring. Last line, for scripts:
//! `ratios: C/B=<x> C/D=<y> C-A_p50_us=<z> C/B_p99=<w>` (throughput, throughput, added latency
//! one request at a time, fixed-rate p99).

mod call;
mod cpu;
mod greeter;
mod load;
mod sidecars;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use smi_benches::generator::{self, Shape};
use smi_benches::stats::{median, spread};
use smi_client::{Mesh, MeshClient, MeshConfig};
use smi_server::AuthorizeLayer;
use smi_test_util::{Control, LocalControl};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use call::{Call, Grpc, H2Channel, Http, h2};
use greeter::{GreeterClient, GreeterServer, Greetings};
use load::Quantiles;

type Error = Box<dyn std::error::Error + Send + Sync>;

const ROLE: &str = "SMI_BENCH_ROLE";
const BODY: [u8; 1024] = [b'x'; 1024];
const PATH: &str = "/data";

/// The real target and split, beside 99 generated TrafficTargets (and their routes).
fn policy() -> String {
    let mut yaml = generator::yaml(&Shape::with_targets(99));
    yaml.push_str(
        r#"
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: data, namespace: bench}
spec:
  matches:
  - {name: get-data, pathRegex: /data, methods: [GET]}
  - {name: say-hello, pathRegex: /greeter\.v1\.Greeter/SayHello, methods: [POST]}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: client-to-server, namespace: bench}
spec:
  destination: {kind: ServiceAccount, name: server, namespace: bench}
  sources:
  - {kind: ServiceAccount, name: client, namespace: bench}
  rules:
  - {kind: HTTPRouteGroup, name: data, matches: [get-data, say-hello]}
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: data-split, namespace: bench}
spec:
  service: data
  backends:
  - {service: data-v1, weight: 34}
  - {service: data-v2, weight: 33}
  - {service: data-v3, weight: 33}
"#,
    );
    yaml
}

fn app() -> Router {
    Router::new()
        .route(
            PATH,
            axum::routing::get(|| async { Bytes::from_static(&BODY) }),
        )
        .merge(tonic::service::Routes::new(GreeterServer::new(Greetings)).into_axum_router())
}

fn main() -> Result<(), Error> {
    if std::env::var_os(ROLE).is_some() {
        // Pinned to one CPU: one worker thread, so that no two workers take turns on it.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        return runtime.block_on(server_role());
    }
    // The load generator: one thread (pinned to CPU 1 below), which the fixed-rate pacer shares
    // cooperatively with the requests it starts. (With a worker pool, the pacer would spin on the
    // main thread and the OS would take turns between it and the workers, in milliseconds.)
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
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
    runtime.block_on(run(quick, only, rate))
}

/// The child: serves A, B and C; prints their addresses; stops when stdin closes.
async fn server_role() -> Result<(), Error> {
    let mesh = Mesh::start(MeshConfig::from_env()?).await?;
    let (a, b, c) = (
        TcpListener::bind("127.0.0.1:0").await?,
        TcpListener::bind("127.0.0.1:0").await?,
        TcpListener::bind("127.0.0.1:0").await?,
    );
    let (a_addr, b_addr, c_addr) = (a.local_addr()?, b.local_addr()?, c.local_addr()?);
    tokio::spawn(async move { axum::serve(a, app()).await });
    tokio::spawn({
        let tls = tokio_rustls::TlsAcceptor::from(mesh.server_tls().load_full());
        async move {
            while let Ok((tcp, _)) = b.accept().await {
                let _ = tcp.set_nodelay(true);
                let tls = tls.clone();
                tokio::spawn(async move {
                    if let Ok(stream) = tls.accept(tcp).await {
                        let service = TowerToHyperService::new(app());
                        let _ = auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                });
            }
        }
    });
    let registrations: Vec<_> = ["bench/data-v1", "bench/data-v2", "bench/data-v3"]
        .iter()
        .map(|s| mesh.register(s, c_addr))
        .collect();
    let authorized = tower_layer::Layer::layer(&AuthorizeLayer::new(mesh.clone()), app());
    tokio::spawn({
        let mesh = mesh.clone();
        async move { smi_server::serve(c, &mesh, authorized).await }
    });
    println!("ready {a_addr} {b_addr} {c_addr}");
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    })
    .await?;
    drop(registrations);
    Ok(())
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

/// Starts the server process, pinned to CPU 0 when `taskset` is available (and this process,
/// every thread of it, to CPU 1). Returns the process and the A, B and C addresses.
/// Prints rows in aligned columns (the first left-aligned).
fn table<const N: usize>(header: &[&str; N], rows: impl Iterator<Item = [String; N]>) {
    let rows: Vec<[String; N]> = std::iter::once(header.map(str::to_owned))
        .chain(rows)
        .collect();
    let widths: Vec<usize> = (0..N)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let mut line = format!("{:<w$}", row[0], w = widths[0]);
        for (cell, w) in row.iter().zip(&widths).skip(1) {
            line.push_str(&format!("  {cell:>w$}"));
        }
        println!("{line}");
    }
}

async fn start_server(
    control: &LocalControl,
) -> Result<(tokio::process::Child, [SocketAddr; 3]), Error> {
    let serves = ["bench/data-v1", "bench/data-v2", "bench/data-v3"];
    let config = control.config("bench/server", control.token("bench/server", &serves), &[]);
    let exe = std::env::current_exe()?;
    let taskset = std::process::Command::new("taskset")
        .arg("-V")
        .output()
        .is_ok();
    let mut command = if taskset {
        let mut c = tokio::process::Command::new("taskset");
        c.args(["-c", "0"]).arg(&exe);
        c
    } else {
        tokio::process::Command::new(&exe)
    };
    let mut server = command
        .env(ROLE, "server")
        .env("SMI_CONTROL_ADDR", config.control.uri())
        .env("SMI_TOKEN", &config.token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    if taskset {
        let _ = std::process::Command::new("taskset")
            .args(["-a", "-cp", "1", &std::process::id().to_string()])
            .output();
    }
    let mut lines = BufReader::new(server.stdout.take().ok_or("no stdout")?).lines();
    let ready = lines.next_line().await?.ok_or("the server did not start")?;
    let addrs: Vec<SocketAddr> = ready
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    match addrs[..] {
        [a, b, c] => Ok((server, [a, b, c])),
        _ => Err(format!("unexpected server line: {ready}").into()),
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

async fn run(quick: bool, only: Option<String>, rate: Option<f64>) -> Result<(), Error> {
    let (rounds, window) = if quick {
        (3, Duration::from_millis(1200))
    } else {
        (5, Duration::from_secs(3))
    };
    let mut control = LocalControl::start(&[("policy.yaml", &policy())]).await;
    let (mut server, [a_addr, b_addr, _]) = start_server(&control).await?;

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
    let _sidecars = if haproxy {
        let (d_addr, processes) = sidecars::start(&control, sidecar_dir.path(), a_addr).await?;
        http.push(Variant {
            name: "D HAProxy pair",
            proxies: processes.iter().filter_map(|p| p.id()).collect(),
            call: get(
                Http::Plain(h2(tcp(d_addr).await?).await?),
                format!("http://{d_addr}{PATH}"),
            ),
        });
        processes
    } else {
        Vec::new()
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
        if let (Some(before), Some(after)) = (before, cpu::seconds(&pids)) {
            f.cpu_us
                .push((after - before) / (rps * window.as_secs_f64()) * 1e6);
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
            "ratios: C/B={:.2} C/D={c_over_d} C-A_p50_us={:.1} C/B_p99={:.2}",
            ratio(&c.rps, &b.rps),
            difference(&p50(c), &p50(a)),
            ratio(&fixed_p99(c, 0), &fixed_p99(b, 0)),
        );
    }
    drop(server.stdin.take());
    let _ = tokio::time::timeout(Duration::from_secs(5), server.wait()).await;
    control.shutdown().await;
    Ok(())
}
