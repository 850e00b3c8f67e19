//! The server under test: the policy the control serves it, the app every variant serves, and
//! the server role (this binary re-executed with [`ROLE`] set, pinned to CPU 0) with the
//! function that starts it.

use std::net::SocketAddr;
use std::process::Stdio;

use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt;
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use smi_benches::generator::{self, Shape};
use smi_client::{Mesh, MeshConfig};
use smi_server::AuthorizeLayer;
use smi_test_util::{Control, LocalControl};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;

use crate::Error;
use crate::greeter::{GreeterServer, Greetings};

/// Set in the server process: `server`, or `unregistered` (see [`Endpoints`]).
pub const ROLE: &str = "SMI_BENCH_ROLE";
/// The main section's response: 1 KiB at [`PATH`].
pub const BODY: [u8; 1024] = [b'x'; 1024];
pub const PATH: &str = "/data";

/// A response of the `sizes` scenario, served on every variant.
#[derive(Debug)]
pub struct ResponseSize {
    pub path: &'static str,
    pub label: &'static str,
    pub body: &'static [u8],
}

pub static SIZES: [ResponseSize; 3] = [
    ResponseSize {
        path: "/data/64",
        label: "64B",
        body: &[b'x'; 64],
    },
    ResponseSize {
        path: "/data/16k",
        label: "16KiB",
        body: &[b'x'; 16 << 10],
    },
    ResponseSize {
        path: "/data/1m",
        label: "1MiB",
        body: &[b'x'; 1 << 20],
    },
];

/// The client identities: the first is the main section's; the scenarios that open more
/// connections than C's server admits from one identity (256, `ServeOptions`) spread them.
pub const CLIENTS: [&str; 4] = [
    "bench/client",
    "bench/client-1",
    "bench/client-2",
    "bench/client-3",
];

/// The real targets and split, beside 99 generated TrafficTargets (and their routes).
///
/// `pathRegex` is a prefix (`^(?:re)`, smi-core's `PathMatch::Prefix`), so each match ends in
/// `$`: one path each. Literal patterns compile to a string comparison, not a regex; the main
/// section's two matches come first, as before the scenarios' were added.
pub fn policy() -> String {
    let mut yaml = generator::yaml(&Shape::with_targets(99));
    yaml.push_str(
        r#"
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: data, namespace: bench}
spec:
  matches:
  - {name: get-data, pathRegex: /data$, methods: [GET]}
  - {name: say-hello, pathRegex: /greeter\.v1\.Greeter/SayHello$, methods: [POST]}
  - {name: get-sized, pathRegex: '/data/(64|16k|1m)$', methods: [GET]}
  - {name: say-hellos, pathRegex: /greeter\.v1\.Greeter/SayHellos$, methods: [POST]}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: client-to-server, namespace: bench}
spec:
  destination: {kind: ServiceAccount, name: server, namespace: bench}
  sources:
  - {kind: ServiceAccount, name: client, namespace: bench}
  rules:
  - {kind: HTTPRouteGroup, name: data, matches: [get-data, say-hello, get-sized, say-hellos]}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: more-clients-to-server, namespace: bench}
spec:
  destination: {kind: ServiceAccount, name: server, namespace: bench}
  sources:
  - {kind: ServiceAccount, name: client-1, namespace: bench}
  - {kind: ServiceAccount, name: client-2, namespace: bench}
  - {kind: ServiceAccount, name: client-3, namespace: bench}
  rules:
  - {kind: HTTPRouteGroup, name: data, matches: [get-data, get-sized]}
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

/// What every variant serves: [`PATH`], the [`SIZES`] (static bytes), and the Greeter.
pub fn app() -> Router {
    let mut router = Router::new().route(PATH, get(|| async { Bytes::from_static(&BODY) }));
    for size in &SIZES {
        router = router.route(
            size.path,
            get(move || async move { Bytes::from_static(size.body) }),
        );
    }
    router.merge(tonic::service::Routes::new(GreeterServer::new(Greetings)).into_axum_router())
}

/// Whether the server registers its C listener as the endpoints of data-v1, -v2 and -v3 (the
/// main server), or not (the fresh servers of the `idle` scenario, which only count memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoints {
    Registered,
    Unregistered,
}

impl Endpoints {
    fn role(self) -> &'static str {
        match self {
            Endpoints::Registered => "server",
            Endpoints::Unregistered => "unregistered",
        }
    }
}

/// The child: serves A, B and C; prints their addresses; stops when stdin closes.
pub async fn role() -> Result<(), Error> {
    let endpoints = match std::env::var(ROLE).as_deref() {
        Ok("unregistered") => Endpoints::Unregistered,
        _ => Endpoints::Registered,
    };
    let mesh = Mesh::start(MeshConfig::from_env()?).await?;
    let (a, b, c) = (
        TcpListener::bind("127.0.0.1:0").await?,
        TcpListener::bind("127.0.0.1:0").await?,
        TcpListener::bind("127.0.0.1:0").await?,
    );
    let (a_addr, b_addr, c_addr) = (a.local_addr()?, b.local_addr()?, c.local_addr()?);
    // TCP_NODELAY on every listener, as B's loop below and C's `smi_server` set it: without it,
    // Nagle's algorithm holds A's small writes (a stream's messages) for the client's ACKs.
    let a = a.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
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
    let registrations: Vec<_> = match endpoints {
        Endpoints::Registered => ["bench/data-v1", "bench/data-v2", "bench/data-v3"]
            .iter()
            .map(|s| mesh.register(s, c_addr))
            .collect(),
        Endpoints::Unregistered => Vec::new(),
    };
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

/// Starts a server process, pinned to CPU 0 when `taskset` is available (and this process,
/// every thread of it, to CPU 1). Returns the process and the A, B and C addresses. It stops
/// when its stdin is closed (or it is dropped).
pub async fn start(
    control: &LocalControl,
    endpoints: Endpoints,
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
        .env(ROLE, endpoints.role())
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

/// Stops a server started by [`start`]: closes its stdin and waits for it (5 s at most).
pub async fn stop(mut server: tokio::process::Child) {
    drop(server.stdin.take());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server.wait()).await;
}
