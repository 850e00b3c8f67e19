//! The extra scenarios, run after the main section (`--main-only` skips them, `--quick`
//! shortens them). Each measures one thing, with every variant in turn in each round
//! (interleaved), and prints a `# ...` heading, one table of medians [min-max] of rounds, and
//! a line of ratios for scripts (`sizes: ...`, each ratio the median of per-round ratios).
//!
//! - [`sizes`]: 64 B, 16 KiB and 1 MiB responses at saturation: req/s and MB/s.
//! - [`clients`]: 100 clients on their own connections, one request in flight each.
//! - [`connect`]: new connections per second, each with its handshakes and one request.
//! - [`streaming`]: gRPC server streaming, messages per second (A, B and C).
//! - [`idle`]: server memory per idle connection (fresh server processes; run last).
//!
//! Variant D (the HAProxy pair) is in every table but `streaming` when `haproxy` is installed.

mod clients;
mod connect;
mod idle;
mod sizes;
mod streaming;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use smi_benches::stats::median;
use smi_client::{Mesh, MeshClient};
use smi_test_util::{Control, LocalControl};

use crate::Error;
use crate::call::{Call, Http, h2};
use crate::server::CLIENTS;

pub const A: &str = "A plain h2c";
pub const B: &str = "B rustls mTLS";
pub const C: &str = "C mesh";
pub const D: &str = "D HAProxy pair";

/// What the main section set up, which the scenarios use too.
pub struct Setup<'a> {
    pub control: &'a LocalControl,
    /// The main section's client mesh (`bench/client`).
    pub client: &'a Mesh,
    /// The server process's A, B and C listeners.
    pub addrs: [SocketAddr; 3],
    pub server_pid: u32,
    /// Variant D, where HAProxy is installed: the client-side sidecar's address and the pids
    /// of both sidecars.
    pub sidecars: Option<(SocketAddr, Vec<u32>)>,
    pub quick: bool,
    /// `--only X`: the variants whose name starts with X.
    pub only: Option<&'a str>,
}

/// How long each scenario measures.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub rounds: usize,
    /// One measurement of one variant.
    pub window: Duration,
}

impl Setup<'_> {
    pub fn wants(&self, name: &str) -> bool {
        self.only.is_none_or(|only| name.starts_with(only))
    }

    /// Every variant is measured: the ratio lines can be printed.
    pub fn all(&self) -> bool {
        self.only.is_none()
    }

    /// The HTTP variants, each on a new connection (C: a new `MeshClient`, its own pool).
    pub async fn http(&self) -> Result<Vec<Target>, Error> {
        let [a, b, _] = self.addrs;
        let mut targets = vec![
            Target {
                name: A,
                client: Http::Plain(h2(crate::tcp(a).await?).await?),
                origin: format!("http://{a}"),
            },
            Target {
                name: B,
                client: Http::Plain(h2(crate::mtls(self.client, b).await?).await?),
                origin: format!("https://{b}"),
            },
            Target {
                name: C,
                client: Http::Mesh(MeshClient::new(self.client.clone())),
                origin: "http://data.bench".to_owned(),
            },
        ];
        if let Some((d, _)) = &self.sidecars {
            targets.push(Target {
                name: D,
                client: Http::Plain(h2(crate::tcp(*d).await?).await?),
                origin: format!("http://{d}"),
            });
        }
        targets.retain(|t| self.wants(t.name));
        Ok(targets)
    }

    /// The processes on a path besides the sidecars: this one (the generator) and the server.
    pub fn pids(&self, proxies: &[u32]) -> Vec<u32> {
        [std::process::id(), self.server_pid]
            .into_iter()
            .chain(proxies.iter().copied())
            .collect()
    }
}

/// One HTTP variant's client and where it sends.
pub struct Target {
    pub name: &'static str,
    pub client: Http,
    /// Scheme and authority, to which a path is appended.
    pub origin: String,
}

impl Target {
    pub fn get(&self, path: &str) -> Call {
        Call::Get {
            client: self.client.clone(),
            uri: Arc::from(format!("{}{path}", self.origin)),
        }
    }
}

/// Runs every scenario in turn.
pub async fn run(setup: &Setup<'_>) -> Result<(), Error> {
    let settings = if setup.quick {
        Settings {
            rounds: 3,
            window: Duration::from_millis(400),
        }
    } else {
        Settings {
            rounds: 3,
            window: Duration::from_secs(1),
        }
    };
    // The other client identities, for the scenarios that open more connections than C's
    // server admits from one.
    let mut clients = vec![setup.client.clone()];
    for identity in &CLIENTS[1..] {
        let mesh = setup.control.mesh(identity, &[], &["bench/data"]).await;
        let mut changes = mesh.changed();
        while ["data-v1", "data-v2", "data-v3"]
            .iter()
            .any(|s| mesh.policy().endpoints("bench", s).is_empty())
        {
            tokio::time::timeout(Duration::from_secs(10), changes.changed()).await??;
        }
        clients.push(mesh);
    }
    println!(
        "# extra scenarios, {} rounds, {:?} windows; median [min-max] of rounds",
        settings.rounds, settings.window
    );
    sizes::run(setup, settings).await?;
    clients::run(setup, settings, &clients).await?;
    connect::run(setup, settings).await?;
    streaming::run(setup, settings).await?;
    idle::run(setup, settings, &clients).await?;
    Ok(())
}

/// The median of the per-round ratios `a / b` (the variants of a round ran side by side).
pub fn ratio(a: &[f64], b: &[f64]) -> f64 {
    let r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    median(&r)
}

/// The median of the per-round differences `a - b`.
pub fn difference(a: &[f64], b: &[f64]) -> f64 {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    median(&d)
}
