//! Memory per idle connection: N connections (1000; 250 with `--quick`) opened to a fresh
//! server process, one 1 KiB GET on each so that HTTP/2 (and TLS) are fully set up, then all
//! kept open. Figure: the growth of the server's resident memory (`VmRSS`) from before the N
//! connections to after, divided by N; for D, the two sidecars' growth too. Kernel socket
//! buffers are not in it.
//!
//! Each measurement starts its own server process (and, for D, its own sidecar pair), not
//! registered as an endpoint: memory freed by an earlier measurement stays with the allocator,
//! and later connections would reuse it unseen. One connection with its request is made first,
//! so that what every server allocates once (session caches, buffers) is in "before".
//!
//! C's server admits 256 connections per peer identity (`ServeOptions`), so B's and C's
//! connections are spread over the four client identities (`server::CLIENTS`), 250 each.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2::SendRequest;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use smi_benches::stats::spread;
use smi_client::Mesh;
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;

use super::{A, B, C, D, Settings, Setup, difference, ratio};
use crate::call::h2;
use crate::server::{self, Endpoints, PATH};
use crate::table::table;
use crate::{Error, sidecars};

/// Connections per client identity (C's server admits 256).
const PER_IDENTITY: usize = 250;
/// Connections being opened at once.
const AT_ONCE: usize = 16;
/// The time the processes are given to finish with what they have been sent before their
/// memory is read (there is no event to wait on from outside the process).
const SETTLE: Duration = Duration::from_millis(200);

/// Where a variant's connections go: plain, or TLS with these client configurations in turn.
#[derive(Clone)]
struct Dial {
    addr: SocketAddr,
    tls: Option<Arc<[Arc<ClientConfig>]>>,
}

impl Dial {
    /// Connection `i`, after one GET on it.
    async fn open(self, i: usize) -> Result<SendRequest<Empty<Bytes>>, Error> {
        let tcp = crate::tcp(self.addr).await?;
        let (mut sender, scheme) = match &self.tls {
            None => (h2(tcp).await?, "http"),
            Some(configs) => {
                let config = configs[i % configs.len()].clone();
                let name = ServerName::IpAddress(self.addr.ip().into());
                let stream = TlsConnector::from(config).connect(name, tcp).await?;
                (h2(stream).await?, "https")
            }
        };
        let uri = format!("{scheme}://{}{PATH}", self.addr);
        let response = sender
            .send_request(Request::get(&uri).body(Empty::new())?)
            .await?;
        let status = response.status();
        response.into_body().collect().await?;
        if !status.is_success() {
            return Err(format!("{uri}: HTTP {status}").into());
        }
        Ok(sender)
    }
}

/// Resident memory of a process (`VmRSS` in `/proc/<pid>/status`), in KiB.
fn rss_kib(pid: u32) -> Result<u64, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status").into())
}

/// Resident memory of `pids` together, in KiB.
fn rss(pids: &[u32]) -> Result<u64, Error> {
    pids.iter().map(|&pid| rss_kib(pid)).sum()
}

/// One measurement of `variant` with `n` connections: the server's growth and the sidecars'
/// (KiB per connection), and the server's memory before (MiB).
async fn measure(
    setup: &Setup<'_>,
    variant: &str,
    n: usize,
    configs: &Arc<[Arc<ClientConfig>]>,
) -> Result<[f64; 3], Error> {
    let (server, [a, b, c]) = server::start(setup.control, Endpoints::Unregistered).await?;
    let server_pid = server.id().ok_or("the server exited")?;
    let dir = tempfile::tempdir()?;
    let mut proxies = Vec::new();
    let dial = match variant {
        A => Dial { addr: a, tls: None },
        B => Dial {
            addr: b,
            tls: Some(configs.clone()),
        },
        C => Dial {
            addr: c,
            tls: Some(configs.clone()),
        },
        _ => {
            let (d, processes) = sidecars::start(setup.control, dir.path(), a).await?;
            proxies = processes;
            Dial { addr: d, tls: None }
        }
    };
    let proxy_pids: Vec<u32> = proxies.iter().filter_map(|p| p.id()).collect();
    let mut open = vec![dial.clone().open(0).await?];
    tokio::time::sleep(SETTLE).await;
    let (server_before, proxies_before) = (rss_kib(server_pid)?, rss(&proxy_pids)?);
    for start in (0..n).step_by(AT_ONCE) {
        let mut batch = JoinSet::new();
        for i in start..(start + AT_ONCE).min(n) {
            batch.spawn(dial.clone().open(i));
        }
        while let Some(sender) = batch.join_next().await {
            open.push(sender??);
        }
    }
    tokio::time::sleep(SETTLE).await;
    let (server_after, proxies_after) = (rss_kib(server_pid)?, rss(&proxy_pids)?);
    drop(open);
    server::stop(server).await;
    drop(proxies);
    let per_connection = |before: u64, after: u64| after.saturating_sub(before) as f64 / n as f64;
    Ok([
        per_connection(server_before, server_after),
        per_connection(proxies_before, proxies_after),
        server_before as f64 / 1024.0,
    ])
}

pub async fn run(setup: &Setup<'_>, settings: Settings, meshes: &[Mesh]) -> Result<(), Error> {
    let n: usize = if setup.quick { 250 } else { 1000 };
    let identities = n.div_ceil(PER_IDENTITY);
    if identities > meshes.len() {
        return Err(format!("idle: {n} connections need {identities} client identities").into());
    }
    let configs: Arc<[Arc<ClientConfig>]> =
        meshes[..identities].iter().map(Mesh::client_tls).collect();
    let mut variants = vec![A, B, C];
    if setup.sidecars.is_some() {
        variants.push(D);
    }
    variants.retain(|v| setup.wants(v));
    // figures[variant] = [server, sidecars, total, server before], one value per round.
    let mut figures = vec![[Vec::new(), Vec::new(), Vec::new(), Vec::new()]; variants.len()];
    for _ in 0..settings.rounds {
        for (variant, f) in variants.iter().zip(&mut figures) {
            let [server, proxies, before] = measure(setup, variant, n, &configs).await?;
            f[0].push(server);
            f[1].push(proxies);
            f[2].push(server + proxies);
            f[3].push(before);
        }
    }

    let from = match identities {
        1 => "one client identity".to_owned(),
        more => format!("{more} client identities"),
    };
    println!(
        "# idle: {n} idle HTTP/2 connections (one 1 KiB GET each; B and C from {from}) to a fresh server; RSS growth per connection in KiB"
    );
    table(
        &[
            "variant",
            "server KiB/conn",
            "sidecars KiB/conn",
            "total KiB/conn",
            "server RSS before (MiB)",
        ],
        variants.iter().zip(&figures).map(|(name, f)| {
            let sidecars = if *name == D {
                spread(&f[1], 1)
            } else {
                "-".to_owned()
            };
            [
                (*name).to_owned(),
                spread(&f[0], 1),
                sidecars,
                spread(&f[2], 1),
                spread(&f[3], 1),
            ]
        }),
    );
    if setup.all() {
        let total = |i: usize| &figures[i][2];
        let c_over_d = match figures.get(3) {
            Some(d) => format!("{:.2}", ratio(total(2), &d[2])),
            None => "skipped".to_owned(),
        };
        println!(
            "idle: C/A={:.2} C/B={:.2} C/D={c_over_d} C-B_KiB={:.1}",
            ratio(total(2), total(0)),
            ratio(total(2), total(1)),
            difference(total(2), total(1)),
        );
    }
    Ok(())
}
