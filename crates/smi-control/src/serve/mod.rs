//! `smi-control serve`: a control service in one process, assembled by [`ControlBuilder`] from
//! its parts (see [`crate::traits`]): a policy source, endpoint sources, a state store and
//! authenticators, plus the gRPC API (TLS, with a certificate from its own CA) and the admin
//! server. [`start`] is the file-based default: the policy directory and the state directory of
//! the [`ServeConfig`].

mod builder;
mod ca;
mod config;
mod servers;

pub use builder::ControlBuilder;
pub use config::ServeConfig;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin;
use crate::traits::WatchGuard;

/// Starts a control service on files: [`ControlBuilder::new`]`(config).start()`.
pub async fn start(config: ServeConfig) -> Result<Running, ServeError> {
    ControlBuilder::new(config).start().await
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("certificate authority: {0}")]
    Ca(#[from] crate::ca::StoreError),
    #[error("deny list: {0}")]
    Revocations(crate::ca::StoreError),
    #[error("version numbers: {0}")]
    Versions(crate::ca::StoreError),
    #[error("issuing the API's certificate: {0}")]
    ServerCertificate(#[from] crate::ca::CaError),
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// A policy source or the state store could not be watched (`what` names it).
    #[error("watching {what}: {message}")]
    Watch { what: String, message: String },
    #[error("policy directory {0}: not a directory")]
    PolicyDir(PathBuf),
    #[error(transparent)]
    AdminToken(#[from] admin::TokenFileError),
    /// The TrafficMetrics aggregated API could not start (feature `kubernetes`).
    #[error("the aggregated API: {0}")]
    AggregatedApi(String),
}

/// A started control service.
#[derive(Debug)]
pub struct Running {
    pub api_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The TrafficMetrics aggregated API's listener, when it was asked for.
    pub aggregated_api_addr: Option<SocketAddr>,
    /// The trust bundle at start (what workloads and tests pin), PEM.
    pub bundle_pem: String,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    _watchers: Vec<WatchGuard>,
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

#[cfg(test)]
mod tests;
