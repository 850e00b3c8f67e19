//! New connections: each is a TCP connect, the TLS handshake where the variant has one, an
//! HTTP/2 handshake and one 1 KiB GET, then it is dropped. Eight at once, closed loop, for a
//! window. Figures: connections per second, and the CPU time of every process on the path
//! (this generator, which does the client's half of each handshake, the server, the sidecars)
//! per connection.
//!
//! - A: TCP and HTTP/2 only.
//! - B and C, each twice: "full" with a client configuration that never resumes, and
//!   "resumed" with one `ClientConfig` kept across connections, whose in-memory session cache
//!   (rustls's default, which `smi_tls`'s configurations keep) holds the tickets the server
//!   sent. The last column counts the handshakes rustls reports as `HandshakeKind::Resumed`,
//!   so the label is checked rather than assumed.
//! - C is the mesh's server side (`smi_server::serve`: handshake, SPIFFE ID, connection slots,
//!   `AuthorizeLayer`) with the mesh's client TLS configuration (`Mesh::client_tls`) and the
//!   check `MeshClient` makes of the server's SPIFFE ID. `MeshClient` itself keeps its
//!   connections in a pool, so it is not what dials here.
//! - D: TCP and HTTP/2 to the client-side sidecar only: HAProxy keeps its mTLS connection to
//!   the server-side sidecar open and reuses it, so no TLS handshake is made per connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use rustls::ClientConfig;
use rustls::HandshakeKind;
use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use smi_benches::stats::spread;
use smi_core::{DEFAULT_TRUST_DOMAIN, ServiceAccount, SpiffeId};
use smi_tls::session_peer;
use tokio_rustls::TlsConnector;

use super::{A, B, C, D, Settings, Setup, ratio};
use crate::call::h2;
use crate::server::PATH;
use crate::table::table;
use crate::{Error, cpu};

/// Connections being made at once.
const AT_ONCE: usize = 8;

/// How one variant connects.
struct Dial {
    name: String,
    addr: SocketAddr,
    uri: Arc<str>,
    tls: Option<Tls>,
    /// The sidecars on the path (D), for the CPU time.
    proxies: Vec<u32>,
}

struct Tls {
    config: Arc<ClientConfig>,
    /// C: the SPIFFE ID the server must present, checked as `MeshClient` checks it.
    server: Option<SpiffeId>,
}

/// What one measurement made.
struct Count {
    connections: u64,
    seconds: f64,
    /// TLS handshakes reported resumed, and all of them.
    resumed: u64,
    handshakes: u64,
}

/// A variant's figures, one value per round.
#[derive(Default)]
struct Figures {
    per_second: Vec<f64>,
    cpu_us: Vec<f64>,
    /// Handshakes reported resumed, and all TLS handshakes, over every round.
    resumed: u64,
    handshakes: u64,
}

impl Dial {
    /// One connection: connect, handshakes, one GET; whether TLS resumed a session.
    async fn once(&self) -> Result<Option<HandshakeKind>, Error> {
        let tcp = crate::tcp(self.addr).await?;
        let Some(tls) = &self.tls else {
            return get(h2(tcp).await?, &self.uri).await.map(|()| None);
        };
        let name = ServerName::IpAddress(self.addr.ip().into());
        let stream = TlsConnector::from(tls.config.clone())
            .connect(name, tcp)
            .await?;
        let session = stream.get_ref().1;
        let kind = session.handshake_kind();
        if let Some(expected) = &tls.server {
            let presented = session_peer(session, std::time::SystemTime::now())?;
            if presented.spiffe_id != *expected {
                return Err(format!("{}: the server is {}", self.name, presented.spiffe_id).into());
            }
        }
        get(h2(stream).await?, &self.uri).await?;
        Ok(kind)
    }

    /// `AT_ONCE` connections at a time for `window`.
    async fn measure(self: &Arc<Self>, window: Duration) -> Result<Count, Error> {
        let (resumed, handshakes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let done = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let deadline = started + window;
        let workers: Vec<_> = (0..AT_ONCE)
            .map(|_| {
                let (dial, done) = (self.clone(), done.clone());
                let (resumed, handshakes) = (resumed.clone(), handshakes.clone());
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        if let Some(kind) = dial.once().await? {
                            handshakes.fetch_add(1, Ordering::Relaxed);
                            if kind == HandshakeKind::Resumed {
                                resumed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok::<(), Error>(())
                })
            })
            .collect();
        for w in workers {
            w.await??;
        }
        Ok(Count {
            connections: done.load(Ordering::Relaxed),
            seconds: started.elapsed().as_secs_f64(),
            resumed: resumed.load(Ordering::Relaxed),
            handshakes: handshakes.load(Ordering::Relaxed),
        })
    }
}

/// One GET on a new connection, its body read.
async fn get(
    mut sender: hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    uri: &str,
) -> Result<(), Error> {
    let response = sender
        .send_request(Request::get(uri).body(Empty::new())?)
        .await?;
    let status = response.status();
    response.into_body().collect().await?;
    if !status.is_success() {
        return Err(format!("{uri}: HTTP {status}").into());
    }
    Ok(())
}

/// The mesh's client configuration with another session cache: `None`, no resumption.
fn with_resumption(config: &ClientConfig, sessions: Option<usize>) -> Arc<ClientConfig> {
    let mut config = config.clone();
    config.resumption = match sessions {
        Some(n) => Resumption::in_memory_sessions(n),
        None => Resumption::disabled(),
    };
    Arc::new(config)
}

pub async fn run(setup: &Setup<'_>, settings: Settings) -> Result<(), Error> {
    let [a, b, c] = setup.addrs;
    let mesh_tls = setup.client.client_tls();
    let server = SpiffeId::new(DEFAULT_TRUST_DOMAIN, ServiceAccount::new("bench", "server"));
    let dial = |name: &str, addr: SocketAddr, tls: Option<Tls>| Dial {
        name: name.to_owned(),
        addr,
        uri: Arc::from(format!(
            "{}://{addr}{PATH}",
            if tls.is_some() { "https" } else { "http" }
        )),
        tls,
        proxies: Vec::new(),
    };
    let tls = |config, server| Some(Tls { config, server });
    let mut dials = vec![
        dial(A, a, None),
        dial(
            &format!("{B}, full"),
            b,
            tls(with_resumption(&mesh_tls, None), None),
        ),
        // A cache of its own: B's tickets are not offered to C's listener, nor C's to B's
        // (both listeners share the server's session store).
        dial(
            &format!("{B}, resumed"),
            b,
            tls(with_resumption(&mesh_tls, Some(256)), None),
        ),
        dial(
            &format!("{C}, full"),
            c,
            tls(with_resumption(&mesh_tls, None), Some(server.clone())),
        ),
        // The mesh's own configuration, as `MeshClient` uses it.
        dial(&format!("{C}, resumed"), c, tls(mesh_tls, Some(server))),
    ];
    if let Some((d, proxies)) = &setup.sidecars {
        dials.push(Dial {
            proxies: proxies.clone(),
            ..dial(&format!("{D} (TLS to the server side reused)"), *d, None)
        });
    }
    dials.retain(|d| setup.wants(&d.name));
    let dials: Vec<Arc<Dial>> = dials.into_iter().map(Arc::new).collect();

    // Warm-up: the resumed variants collect their first tickets.
    for d in &dials {
        d.measure(settings.window / 4).await?;
    }
    let mut figures: Vec<Figures> = dials.iter().map(|_| Figures::default()).collect();
    for _ in 0..settings.rounds {
        for (d, f) in dials.iter().zip(&mut figures) {
            let pids = setup.pids(&d.proxies);
            let before = cpu::seconds(&pids);
            let count = d.measure(settings.window).await?;
            if let (Some(before), Some(after)) = (before, cpu::seconds(&pids)) {
                f.cpu_us
                    .push((after - before) / count.connections as f64 * 1e6);
            }
            f.per_second.push(count.connections as f64 / count.seconds);
            f.resumed += count.resumed;
            f.handshakes += count.handshakes;
        }
    }

    println!(
        "# connect: new connections, {AT_ONCE} at once: TCP + TLS + HTTP/2 handshakes + one 1 KiB GET each; CPU of all processes"
    );
    table(
        &["variant", "conn/s", "CPU us/conn", "resumed/TLS handshakes"],
        dials.iter().zip(&figures).map(|(d, f)| {
            let resumed = if d.tls.is_some() {
                format!("{}/{}", f.resumed, f.handshakes)
            } else {
                "-".to_owned()
            };
            [
                d.name.clone(),
                spread(&f.per_second, 0),
                spread(&f.cpu_us, 0),
                resumed,
            ]
        }),
    );
    for (d, f) in dials.iter().zip(&figures) {
        if d.name.ends_with("resumed") && f.resumed * 10 < f.handshakes * 9 {
            println!(
                "{}: only {} of {} handshakes resumed: the server did not accept most tickets",
                d.name, f.resumed, f.handshakes
            );
        }
    }
    if setup.all() {
        let rate = |i: usize| &figures[i].per_second;
        let c_over_d = match figures.get(5) {
            Some(d) => format!("{:.2}", ratio(rate(3), &d.per_second)),
            None => "skipped".to_owned(),
        };
        println!(
            "connect: C/B_full={:.2} C/B_resumed={:.2} C_resumed/C_full={:.2} C/A={:.2} C/D={c_over_d}",
            ratio(rate(3), rate(1)),
            ratio(rate(4), rate(2)),
            ratio(rate(4), rate(3)),
            ratio(rate(3), rate(0)),
        );
    }
    Ok(())
}
