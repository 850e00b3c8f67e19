//! The data plane side by side: `cargo run --release -p smi-benches --bin dataplane [-- --quick]`.
//!
//! One server process (this binary re-executed in the `server` role) serves the same axum app
//! (1 KiB responses) three ways; this process is the load generator:
//! - **A**: plain HTTP/2 over TCP (hyper, h2c): the floor.
//! - **B**: HTTP/2 over rustls mTLS (TLS 1.3, P-256, the mesh's certificates), no mesh layers.
//! - **C**: the full mesh on both sides: `MeshClient` (a 3-way TrafficSplit, p2c, pooled mTLS,
//!   SPIFFE ID check, metrics) to `smi_server::serve` + `AuthorizeLayer` (100 TrafficTargets
//!   loaded, metrics).
//! - **D**: the sidecar model: the same plain client and server as A, through a pair of HAProxy
//!   proxies with mTLS (h2) between them (certificates from the same control service). Skipped,
//!   with a message, when `haproxy` is not installed (Debian: `apt-get install haproxy`).
//!
//! Each round runs A, B, C in turn (interleaved), in two modes: saturation (64 requests in flight
//! on one HTTP/2 connection, closed loop) and one request at a time (latency per request). The
//! control service runs in this process and is idle while measuring. Last line, for scripts:
//! `ratios: C/B=<x> C/D=<y> C-A_p50_us=<z> C/B_p50=<w> C/B_p99=<v>`.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use smi_benches::generator::{self, Shape};
use smi_benches::stats::{median, spread};
use smi_client::{Mesh, MeshClient, MeshConfig};
use smi_examples::local::LocalControl;
use smi_server::AuthorizeLayer;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

type Error = Box<dyn std::error::Error + Send + Sync>;

const ROLE: &str = "SMI_BENCH_ROLE";
const IN_FLIGHT: usize = 64;
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
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: client-to-server, namespace: bench}
spec:
  destination: {kind: ServiceAccount, name: server, namespace: bench}
  sources:
  - {kind: ServiceAccount, name: client, namespace: bench}
  rules:
  - {kind: HTTPRouteGroup, name: data, matches: [get-data]}
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
    Router::new().route(
        PATH,
        axum::routing::get(|| async { Bytes::from_static(&BODY) }),
    )
}

fn main() -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if std::env::var_os(ROLE).is_some() {
        return runtime.block_on(server_role());
    }
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--only C` (or A, B, D) measures one variant, e.g. under a profiler.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    runtime.block_on(run(quick, only))
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
    println!("ready {a_addr} {b_addr}");
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    })
    .await?;
    drop(registrations);
    Ok(())
}

/// A free loopback port (bound and released; HAProxy binds it right after).
fn free_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The HAProxy sidecar pair in front of the plain server `a_addr`: returns the client-side
/// proxy's address (h2c in), and the two processes.
async fn sidecars(
    control: &LocalControl,
    dir: &std::path::Path,
    a_addr: SocketAddr,
) -> Result<(SocketAddr, Vec<tokio::process::Child>), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut files = Vec::new();
    for (name, identity) in [
        ("client-sidecar", "bench/client-sidecar"),
        ("server-sidecar", "bench/server-sidecar"),
    ] {
        let config = control.workload(identity, &[])?;
        let credentials = smi_client::control::enroll(&config.control, &config.token).await?;
        // HAProxy wants the chain and the key in one file.
        let pem = credentials.write_pem_files(dir, name)?;
        let path = dir.join(format!("{name}.pem"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        std::io::Write::write_all(
            &mut file,
            format!(
                "{}{}",
                std::fs::read_to_string(&pem.chain)?,
                std::fs::read_to_string(&pem.key)?
            )
            .as_bytes(),
        )?;
        files.push(path);
    }
    let bundle = dir.join("bundle.pem");
    let (front, between) = (free_port()?, free_port()?);
    let defaults =
        "defaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n";
    let client_side = format!(
        "global\n  maxconn 4000\n{defaults}frontend local\n  bind 127.0.0.1:{front} proto h2\n  default_backend remote\nbackend remote\n  server remote 127.0.0.1:{between} ssl crt {} ca-file {} verify required alpn h2\n",
        files[0].display(),
        bundle.display()
    );
    let server_side = format!(
        "global\n  maxconn 4000\n{defaults}frontend mtls\n  bind 127.0.0.1:{between} ssl crt {} ca-file {} verify required alpn h2\n  default_backend app\nbackend app\n  server app {a_addr} proto h2\n",
        files[1].display(),
        bundle.display()
    );
    let mut processes = Vec::new();
    for (name, config) in [
        ("server-side.cfg", server_side),
        ("client-side.cfg", client_side),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, config)?;
        processes.push(
            tokio::process::Command::new("haproxy")
                .arg("-db")
                .arg("-f")
                .arg(&path)
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .spawn()?,
        );
    }
    let addr: SocketAddr = format!("127.0.0.1:{front}").parse()?;
    // Ready when the client-side proxy accepts.
    let started = Instant::now();
    while TcpStream::connect(addr).await.is_err() {
        if started.elapsed() > Duration::from_secs(10) {
            return Err("HAProxy did not start within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((addr, processes))
}

/// A way to send one request.
#[derive(Clone)]
enum Client {
    Plain(http2::SendRequest<Empty<Bytes>>),
    Mesh(MeshClient<Full<Bytes>>),
}

impl Client {
    async fn get(&self, uri: &str) -> Result<(), Error> {
        let status = match self {
            Client::Plain(sender) => {
                let response = sender
                    .clone()
                    .send_request(Request::get(uri).body(Empty::new())?)
                    .await?;
                let status = response.status();
                response.into_body().collect().await?;
                status
            }
            Client::Mesh(client) => {
                let response = client
                    .send(Request::get(uri).body(Full::new(Bytes::new()))?)
                    .await?;
                let status = response.status();
                response.into_body().collect().await?;
                status
            }
        };
        if !status.is_success() {
            return Err(format!("{uri}: HTTP {status}").into());
        }
        Ok(())
    }
}

async fn h2<T>(io: T) -> Result<http2::SendRequest<Empty<Bytes>>, Error>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(TokioIo::new(io))
        .await?;
    tokio::spawn(connection);
    Ok(sender)
}

struct Variant {
    name: &'static str,
    client: Client,
    uri: String,
}

/// Closed loop: IN_FLIGHT workers for `window`; requests per second.
async fn saturation(v: &Variant, window: Duration) -> Result<f64, Error> {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + window;
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..IN_FLIGHT {
        let (client, uri, done) = (v.client.clone(), v.uri.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                client.get(&uri).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), Error>(())
        }));
    }
    for w in workers {
        w.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// One request at a time for `window`; (p50, p99) in microseconds.
async fn one_at_a_time(v: &Variant, window: Duration) -> Result<(f64, f64), Error> {
    let mut latencies = Vec::new();
    let deadline = Instant::now() + window;
    while Instant::now() < deadline {
        let t = Instant::now();
        v.client.get(&v.uri).await?;
        latencies.push(t.elapsed().as_secs_f64() * 1e6);
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    Ok((at(0.50), at(0.99)))
}

async fn run(quick: bool, only: Option<String>) -> Result<(), Error> {
    let (rounds, window) = if quick {
        (3, Duration::from_secs(2))
    } else {
        (5, Duration::from_secs(5))
    };
    let control = LocalControl::start(&policy()).await?;

    // The server process, pinned to CPU 0 when taskset is available (load generator on CPU 1).
    let server_config = control.workload(
        "bench/server",
        &["bench/data-v1", "bench/data-v2", "bench/data-v3"],
    )?;
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
        .env("SMI_CONTROL_ADDR", server_config.control.uri())
        .env("SMI_TOKEN", &server_config.token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    if taskset {
        let _ = std::process::Command::new("taskset")
            .args(["-cp", "1", &std::process::id().to_string()])
            .output();
    }
    let mut lines = BufReader::new(server.stdout.take().ok_or("no stdout")?).lines();
    let ready = lines.next_line().await?.ok_or("the server did not start")?;
    let addrs: Vec<SocketAddr> = ready
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let (a_addr, b_addr) = (addrs[0], addrs[1]);

    let client_mesh =
        Mesh::start(control.workload("bench/client", &[])?.calls(["bench/data"])).await?;
    let mut changes = client_mesh.changed();
    while ["data-v1", "data-v2", "data-v3"]
        .iter()
        .any(|s| client_mesh.policy().endpoints("bench", s).is_empty())
    {
        tokio::time::timeout(Duration::from_secs(10), changes.changed()).await??;
    }

    let tcp = TcpStream::connect(a_addr).await?;
    tcp.set_nodelay(true)?;
    let plain = h2(tcp).await?;
    let tcp = TcpStream::connect(b_addr).await?;
    tcp.set_nodelay(true)?;
    let tls = tokio_rustls::TlsConnector::from(client_mesh.client_tls())
        .connect(
            rustls::pki_types::ServerName::IpAddress(b_addr.ip().into()),
            tcp,
        )
        .await?;
    let mtls = h2(tls).await?;
    let mut variants = vec![
        Variant {
            name: "A plain h2c",
            client: Client::Plain(plain),
            uri: format!("http://{a_addr}{PATH}"),
        },
        Variant {
            name: "B rustls mTLS",
            client: Client::Plain(mtls),
            uri: format!("https://{b_addr}{PATH}"),
        },
        Variant {
            name: "C mesh",
            client: Client::Mesh(MeshClient::new(client_mesh.clone())),
            uri: format!("http://data.bench{PATH}"),
        },
    ];
    let sidecar_dir = tempfile::tempdir()?;
    let haproxy = std::process::Command::new("haproxy")
        .arg("-v")
        .output()
        .is_ok();
    let _sidecars = if haproxy {
        let (d_addr, processes) = sidecars(&control, sidecar_dir.path(), a_addr).await?;
        let tcp = TcpStream::connect(d_addr).await?;
        tcp.set_nodelay(true)?;
        variants.push(Variant {
            name: "D HAProxy pair",
            client: Client::Plain(h2(tcp).await?),
            uri: format!("http://{d_addr}{PATH}"),
        });
        processes
    } else {
        Vec::new()
    };
    if let Some(only) = &only {
        variants.retain(|v| v.name.starts_with(only.as_str()));
        if variants.is_empty() {
            return Err(format!("--only {only}: no such variant (A, B, C, D)").into());
        }
    }
    // Warm up every path (connections, pools, caches).
    for v in &variants {
        saturation(v, Duration::from_millis(300)).await?;
    }

    let mut rps = vec![Vec::new(); variants.len()];
    let mut p50 = vec![Vec::new(); variants.len()];
    let mut p99 = vec![Vec::new(); variants.len()];
    for _ in 0..rounds {
        for (i, v) in variants.iter().enumerate() {
            rps[i].push(saturation(v, window).await?);
            let (median, tail) = one_at_a_time(v, window / 2).await?;
            p50[i].push(median);
            p99[i].push(tail);
        }
    }
    println!("# data plane, {rounds} rounds of {window:?} per variant and mode; median [min-max]");
    println!(
        "{:<16} {:>26} {:>26} {:>26}",
        "variant", "req/s (64 in flight)", "1-at-a-time p50 (us)", "1-at-a-time p99 (us)"
    );
    for (i, v) in variants.iter().enumerate() {
        println!(
            "{:<16} {:>26} {:>26} {:>26}",
            v.name,
            spread(&rps[i], 0),
            spread(&p50[i], 1),
            spread(&p99[i], 1)
        );
    }
    if !haproxy {
        println!(
            "D HAProxy pair   skipped: haproxy is not installed (Debian: apt-get install haproxy)"
        );
    }
    let ratio = |a: &[f64], b: &[f64]| {
        let r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
        median(&r)
    };
    if only.is_none() {
        let c_minus_a: Vec<f64> = p50[2].iter().zip(&p50[0]).map(|(c, a)| c - a).collect();
        let c_over_d = if haproxy {
            format!("{:.2}", ratio(&rps[2], &rps[3]))
        } else {
            "skipped".to_owned()
        };
        println!(
            "ratios: C/B={:.2} C/D={c_over_d} C-A_p50_us={:.1} C/B_p50={:.2} C/B_p99={:.2}",
            ratio(&rps[2], &rps[1]),
            median(&c_minus_a),
            ratio(&p50[2], &p50[1]),
            ratio(&p99[2], &p99[1]),
        );
    }
    drop(server.stdin.take());
    let _ = tokio::time::timeout(Duration::from_secs(5), server.wait()).await;
    control.stop().await;
    Ok(())
}
