//! `smi-control serve`: wires the CA, enrollment, policy reloads, the registry, the gRPC API
//! (TLS, with a certificate from its own CA) and the admin server into one process.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use smi_core::proto::v1::control_server::ControlServer;
use smi_core::{DEFAULT_TRUST_DOMAIN, Options};
use smi_tls::{Mtls, OwnCertificate};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{self, Access, AdminState, AdminToken, AllowedHosts};
use crate::api::ControlApi;
use crate::ca::{Authority, CaStore, load_provided};
use crate::distribute::Hub;
use crate::enroll::{Authenticators, CertificateRenewal, JoinTokens};
use crate::quota::{Quotas, StreamCounts};
use crate::registry::Registry;
use crate::revocation::{Revocations, USES_DIR};
use crate::source::{PolicyReloader, watch_dir, watch_dir_except};
use crate::status::Status;

/// Settings of one control service. `Default` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub policy_dir: PathBuf,
    pub state_dir: PathBuf,
    /// gRPC API (TLS). Default `127.0.0.1:7443`.
    pub listen: SocketAddr,
    /// Admin HTTP. Default `127.0.0.1:7080` (loopback: a warning is logged for any other).
    pub admin: SocketAddr,
    /// Names (or IPs) the admin API answers to in `Host`, besides `localhost`, loopback IPs and
    /// the IP it is bound to (others get 421: DNS rebinding). Default none.
    pub admin_hosts: Vec<String>,
    /// A file (mode 0600 or stricter) with the bearer token every admin path except `/healthz`,
    /// `/readyz` and `/metrics` then needs; read at start. Default none: no token.
    pub admin_token_file: Option<PathBuf>,
    /// Default `cluster.local`.
    pub trust_domain: String,
    /// Workload certificate lifetime. Default 24 h.
    pub certificate_ttl: Duration,
    /// How long a chain of renewals may go on after its first enrollment (the join token's
    /// use); past it, renewal is refused and the workload needs a new join token. Default 7
    /// days (the hardening issue's figure: a stolen certificate buys at most a week).
    pub max_chain_lifetime: Duration,
    /// How long a registration lives without a heartbeat. Default 15 s.
    pub lease: Duration,
    /// An operator-provided CA instead of the state directory's root.
    pub ca_cert: Option<PathBuf>,
    pub ca_key: Option<PathBuf>,
    pub ca_bundle: Option<PathBuf>,
    /// Extra DNS names for the API's certificate (it always has `localhost` and its IP).
    pub server_names: Vec<String>,
    /// Allow all traffic (OSM's permissive mode). Default off.
    pub permissive: bool,
    /// What one workload may make the control hold (see [`Quotas`] for the defaults).
    pub quotas: Quotas,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            policy_dir: PathBuf::from("policy"),
            state_dir: PathBuf::from("state"),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 7443)),
            admin: SocketAddr::from((Ipv4Addr::LOCALHOST, 7080)),
            admin_hosts: Vec::new(),
            admin_token_file: None,
            trust_domain: DEFAULT_TRUST_DOMAIN.to_owned(),
            certificate_ttl: Duration::from_secs(24 * 3600),
            max_chain_lifetime: Duration::from_secs(7 * 24 * 3600),
            lease: Duration::from_secs(15),
            ca_cert: None,
            ca_key: None,
            ca_bundle: None,
            server_names: Vec::new(),
            permissive: false,
            quotas: Quotas::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("certificate authority: {0}")]
    Ca(#[from] crate::ca::StoreError),
    #[error("deny list: {0}")]
    Revocations(crate::ca::StoreError),
    #[error("issuing the API's certificate: {0}")]
    ServerCertificate(#[from] crate::ca::CaError),
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("watching {path}: {source}")]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
    #[error("policy directory {0}: not a directory")]
    PolicyDir(PathBuf),
    #[error(transparent)]
    AdminToken(#[from] admin::TokenFileError),
}

/// A started control service.
#[derive(Debug)]
pub struct Running {
    pub api_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The trust bundle at start (what workloads and tests pin), PEM.
    pub bundle_pem: String,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    _watchers: Vec<notify::RecommendedWatcher>,
}

impl Running {
    /// Stops accepting, ends streams, and waits (at most [`SHUTDOWN_GRACE`]) for the servers
    /// to finish; what is still running then is aborted.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        for mut task in self.tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                tracing::warn!("a server did not stop within the grace period; aborting it");
                task.abort();
            }
        }
    }
}

/// The largest request a workload may send: a Register of 1,000 endpoints is about 50 KiB, a
/// CSR under 1 KiB. Larger ones are refused before they are decoded.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// Streams one connection may have open (a workload needs a few; the fan-out benchmark puts 100
/// Watch streams on one). With [`MAX_REQUEST_BYTES`], what one connection can make the control
/// buffer is bounded (64 MiB), and [`REQUEST_TIMEOUT`] frees it.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 256;

/// How long a call may take to be answered (a Watch or Register is answered when its stream
/// opens): a client that trickles a request is cut.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest message the control sends: views are chunked well under it
/// ([`crate::chunk::CHUNK_BYTES`]), and workloads decode up to this.
pub const MAX_RESPONSE_BYTES: usize = smi_core::proto::MAX_MESSAGE_BYTES;

/// How long shutdown waits for open connections to finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How often the API's own certificate is renewed (it lives twice as long).
const SERVER_CERT_RENEWAL: Duration = Duration::from_secs(12 * 3600);

pub async fn start(config: ServeConfig) -> Result<Running, ServeError> {
    if !config.policy_dir.is_dir() {
        return Err(ServeError::PolicyDir(config.policy_dir.clone()));
    }
    let admin_token = config
        .admin_token_file
        .as_deref()
        .map(AdminToken::from_file)
        .transpose()?;
    let store = CaStore::new(&config.state_dir);
    let load_ca = {
        let config = config.clone();
        let store = store.clone();
        move || -> Result<Authority, ServeError> {
            Ok(match (&config.ca_cert, &config.ca_key) {
                (Some(cert), Some(key)) => {
                    load_provided(cert, key, config.ca_bundle.as_deref(), &config.trust_domain)?
                }
                _ => store.open_or_init(&config.trust_domain)?,
            })
        }
    };
    let authority = Arc::new(ArcSwap::from_pointee(load_ca()?));
    let tokens = JoinTokens::new(&store.token_key()?, &config.trust_domain);
    let status = Status::new();
    let hub = Hub::new(config.permissive);
    hub.set_bundle(bundle_der(&authority.load()));
    let revocations = Revocations::open(&config.state_dir, &config.trust_domain, hub.clone())
        .map_err(ServeError::Revocations)?;
    let registry = Registry::with_quotas(hub.clone(), config.quotas.clone());

    let reloader = Arc::new(PolicyReloader::new(
        config.policy_dir.clone(),
        hub.clone(),
        status.clone(),
        Options::default()
            .trust_domain(&config.trust_domain)
            .permissive(config.permissive),
    ));
    reloader.reload();
    let policy_watcher = {
        let reloader = reloader.clone();
        watch_dir(&config.policy_dir, move || {
            reloader.reload();
        })
        .map_err(|source| ServeError::Watch {
            path: config.policy_dir.clone(),
            source,
        })?
    };

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let api_addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.listen,
        source,
    })?;
    let server_ips = server_ips(api_addr.ip());
    let tls = Arc::new(ArcSwap::from_pointee(server_tls(
        &authority.load(),
        &config.server_names,
        &server_ips,
    )?));

    // The CA can change under us: `smictl ca rotate` rewrites ca.json, and roots retire on a
    // schedule. Either way: reload, republish the bundle, and re-issue the API's certificate.
    let refresh_ca = {
        let (authority, tls, hub) = (authority.clone(), tls.clone(), hub.clone());
        let (names, ips) = (config.server_names.clone(), server_ips.clone());
        let load_ca = load_ca.clone();
        Arc::new(
            move || match load_ca().and_then(|ca| Ok((server_tls(&ca, &names, &ips)?, ca))) {
                Ok((server, ca)) => {
                    tracing::info!(roots = ca.bundle().len(), "certificate authority reloaded");
                    // Publish last: a workload that sees the new bundle finds the new CA in place.
                    let bundle = bundle_der(&ca);
                    authority.store(Arc::new(ca));
                    tls.store(Arc::new(server));
                    hub.set_bundle(bundle);
                }
                Err(e) => {
                    tracing::error!(error = %e, "certificate authority reload failed; keeping the current one")
                }
            },
        )
    };
    let mut watchers = vec![policy_watcher];
    // The state directory: the deny list (`smictl revoke`), and the CA unless it is provided.
    // The token use ledger is ours: writing it is no reason to reload.
    let refresh = config.ca_cert.is_none().then(|| refresh_ca.clone());
    let on_state_change = {
        let revocations = revocations.clone();
        move || {
            revocations.reload();
            if let Some(refresh) = &refresh {
                refresh();
            }
        }
    };
    let uses_dir = config.state_dir.join(USES_DIR);
    let uses_real = std::fs::canonicalize(&config.state_dir).map(|d| d.join(USES_DIR));
    let ours = move |path: &std::path::Path| {
        path.starts_with(&uses_dir) || uses_real.as_ref().is_ok_and(|d| path.starts_with(d))
    };
    let watcher = watch_dir_except(&config.state_dir, ours, on_state_change).map_err(|source| {
        ServeError::Watch {
            path: config.state_dir.clone(),
            source,
        }
    })?;
    watchers.push(watcher);

    let (shutdown, shutdown_rx) = watch::channel(false);
    let api = ControlApi {
        ca: authority.clone(),
        authenticators: Authenticators::default()
            .with(tokens)
            .with(CertificateRenewal {
                trust_domain: config.trust_domain.clone(),
                max_chain_lifetime: config.max_chain_lifetime,
            }),
        revocations,
        hub: hub.clone(),
        registry: registry.clone(),
        status: status.clone(),
        certificate_ttl: config.certificate_ttl,
        max_chain_lifetime: config.max_chain_lifetime,
        lease: config.lease,
        quotas: config.quotas.clone(),
        watches: StreamCounts::new(
            "Watch",
            config.quotas.watches_per_identity,
            Some(config.quotas.watches_per_connection),
        ),
        registrations: StreamCounts::new(
            "Register",
            config.quotas.registrations_per_identity,
            None,
        ),
        stopping: shutdown_rx.clone(),
    };

    let admin_listener =
        TcpListener::bind(config.admin)
            .await
            .map_err(|source| ServeError::Bind {
                addr: config.admin,
                source,
            })?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|source| ServeError::Bind {
            addr: config.admin,
            source,
        })?;

    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let mut tasks = Vec::new();
    let incoming = smi_tls::accept::incoming(listener, tls.clone());
    let grpc = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .timeout(REQUEST_TIMEOUT)
        .add_service(
            ControlServer::new(api)
                .max_decoding_message_size(MAX_REQUEST_BYTES)
                .max_encoding_message_size(MAX_RESPONSE_BYTES),
        )
        .serve_with_incoming_shutdown(incoming, stopped(shutdown_rx.clone()));
    tasks.push(tokio::spawn(async move {
        if let Err(e) = grpc.await {
            tracing::error!(error = %e, "gRPC server failed");
        }
    }));
    admin::warn_if_exposed(admin_addr, admin_token.is_some());
    let admin_access = Access::new(
        AllowedHosts::new(admin_addr.ip(), &config.admin_hosts),
        admin_token,
    );
    let admin = axum::serve(
        admin_listener,
        admin::router(
            AdminState {
                hub: hub.clone(),
                registry,
                status,
            },
            admin_access,
        ),
    )
    .with_graceful_shutdown(stopped(shutdown_rx.clone()));
    tasks.push(tokio::spawn(async move {
        if let Err(e) = admin.await {
            tracing::error!(error = %e, "admin server failed");
        }
    }));
    // After (re)starting, endpoints are partial until every live server has had one lease to
    // register again (workloads merge partial lists instead of dropping what they know).
    tasks.push(tokio::spawn({
        let (hub, lease) = (hub.clone(), config.lease);
        let mut rx = shutdown_rx.clone();
        async move {
            tokio::select! {
                () = tokio::time::sleep(lease) => {
                    hub.endpoints_complete();
                }
                _ = rx.wait_for(|stop| *stop) => {}
            }
        }
    }));
    // Timers: renew the API's certificate, and reload when a retiring root's time comes.
    tasks.push(tokio::spawn({
        let mut rx = shutdown_rx;
        let store = store.clone();
        async move {
            loop {
                let retire = store
                    .next_retirement()
                    .and_then(|t| t.duration_since(std::time::SystemTime::now()).ok())
                    .map_or(SERVER_CERT_RENEWAL, |d| {
                        d.min(SERVER_CERT_RENEWAL) + Duration::from_millis(100)
                    });
                tokio::select! {
                    _ = tokio::time::sleep(retire) => refresh_ca(),
                    _ = rx.wait_for(|stop| *stop) => return,
                }
            }
        }
    }));

    let bundle_pem = smi_core::pem::certificates(authority.load().bundle());
    tracing::info!(%api_addr, %admin_addr, control = %JoinTokens::new(&store.token_key()?, &config.trust_domain).control_id(), "smi-control ready");
    Ok(Running {
        api_addr,
        admin_addr,
        bundle_pem,
        shutdown,
        tasks,
        _watchers: watchers,
    })
}

fn bundle_der(ca: &Authority) -> Vec<Vec<u8>> {
    ca.bundle().iter().map(|c| c.to_vec()).collect()
}

fn server_ips(bound: IpAddr) -> Vec<IpAddr> {
    let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    if !bound.is_unspecified() && !ips.contains(&bound) {
        ips.push(bound);
    }
    ips
}

/// The API's TLS config: our certificate from our CA; client certificates optional (first
/// contact has none) but verified against the trust bundle when presented.
fn server_tls(
    ca: &Authority,
    names: &[String],
    ips: &[IpAddr],
) -> Result<ServerConfig, ServeError> {
    let mut dns = vec!["localhost".to_owned(), "smi-control".to_owned()];
    dns.extend(names.iter().cloned());
    let (chain, key) = ca.issue_server(&dns, ips, 2 * SERVER_CERT_RENEWAL)?;
    let own = OwnCertificate {
        chain,
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    };
    Mtls::new(ca.bundle().iter().map(|c| c.as_ref()))
        .and_then(|mtls| mtls.control_server(own))
        .map_err(|e| ServeError::Tls(e.to_string()))
}
