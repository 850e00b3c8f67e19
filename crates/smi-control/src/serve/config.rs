//! [`ServeConfig`]: the settings of one control service, with documented defaults.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use smi_core::DEFAULT_TRUST_DOMAIN;

use crate::quota::Quotas;
use crate::registry::DEFAULT_LEASE;

/// Settings of one control service. `Default` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The policy directory: the policy source unless the builder is given another. Default
    /// `policy`.
    pub policy_dir: PathBuf,
    /// The state directory: the state store unless the builder is given another. Default
    /// `state`.
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
            lease: DEFAULT_LEASE,
            ca_cert: None,
            ca_key: None,
            ca_bundle: None,
            server_names: Vec::new(),
            permissive: false,
            quotas: Quotas::default(),
        }
    }
}
