//! The CA as a running control holds it: loaded from the state store (or the operator's files),
//! swapped when it changes, with the API's own serving certificate re-issued from it.
//!
//! The CA can change under a running control: `smictl ca rotate` rewrites it, and roots retire
//! on a schedule. Either way the control reloads it, re-issues the API's certificate, and then
//! republishes the bundle: published last, so that a workload that sees the new bundle finds
//! the new CA in place.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use smi_tls::{Mtls, OwnCertificate};
use tokio::sync::watch;

use super::{ServeConfig, ServeError};
use crate::ca::{Authority, load_provided};
use crate::hub::Hub;
use crate::traits::StateStore;

/// How often the API's own certificate is renewed (it lives twice as long).
const SERVER_CERT_RENEWAL: Duration = Duration::from_secs(12 * 3600);

/// The operator's CA (`--ca-cert`, `--ca-key`) if given, else the store's (made on first start).
pub(super) fn load(config: &ServeConfig, store: &dyn StateStore) -> Result<Authority, ServeError> {
    Ok(match (&config.ca_cert, &config.ca_key) {
        (Some(cert), Some(key)) => {
            load_provided(cert, key, config.ca_bundle.as_deref(), &config.trust_domain)?
        }
        _ => store.authority(&config.trust_domain)?,
    })
}

/// Keeps the CA, the API's TLS config and the published bundle in step.
#[derive(Clone)]
pub(super) struct CaKeeper {
    pub config: Arc<ServeConfig>,
    pub store: Arc<dyn StateStore>,
    pub authority: Arc<ArcSwap<Authority>>,
    pub tls: Arc<ArcSwap<ServerConfig>>,
    pub hub: Arc<Hub>,
    /// The IPs the API's certificate names.
    pub ips: Vec<IpAddr>,
}

impl CaKeeper {
    /// Reloads the CA; on success swaps it and the API's certificate, then publishes the bundle.
    /// A CA that does not load leaves the current one in force.
    pub fn refresh(&self) {
        let reloaded = load(&self.config, &*self.store)
            .and_then(|ca| Ok((server_tls(&ca, &self.config.server_names, &self.ips)?, ca)));
        match reloaded {
            Ok((server, ca)) => {
                tracing::info!(roots = ca.bundle().len(), "certificate authority reloaded");
                let bundle = ca.bundle().to_vec();
                self.authority.store(Arc::new(ca));
                self.tls.store(Arc::new(server));
                self.hub.set_bundle(bundle);
            }
            Err(e) => {
                tracing::error!(error = %e, "certificate authority reload failed; keeping the current one")
            }
        }
    }

    /// Renews the API's certificate, and reloads when a retiring root's time comes, until
    /// `stopping`.
    pub async fn timers(self, mut stopping: watch::Receiver<bool>) {
        loop {
            let retire = self
                .store
                .next_retirement()
                .and_then(|t| t.duration_since(SystemTime::now()).ok())
                .map_or(SERVER_CERT_RENEWAL, |d| {
                    d.min(SERVER_CERT_RENEWAL) + Duration::from_millis(100)
                });
            let stop = tokio::select! {
                () = tokio::time::sleep(retire) => false,
                _ = stopping.wait_for(|stop| *stop) => true,
            };
            if stop {
                return;
            }
            let keeper = self.clone();
            let _ = tokio::task::spawn_blocking(move || keeper.refresh()).await;
        }
    }
}

/// The IPs the API's certificate names: loopback, and the bound one unless it is unspecified.
pub(super) fn server_ips(bound: IpAddr) -> Vec<IpAddr> {
    let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    if !bound.is_unspecified() && !ips.contains(&bound) {
        ips.push(bound);
    }
    ips
}

/// The API's TLS config: our certificate from our CA; client certificates optional (first
/// contact has none) but verified against the trust bundle when presented.
pub(super) fn server_tls(
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
