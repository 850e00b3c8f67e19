//! The aggregated API's TLS: a serving certificate from the control's CA (so the APIService's
//! `caBundle` is the control's bundle), re-issued every 12 hours and whenever the CA changes,
//! and a client certificate asked for but not required.
//!
//! The client's certificate is not verified in the handshake, only its proof of possession
//! (the CertificateVerify signature): the front-proxy CA can change under a connection, and a
//! certificate of another CA must be a 401 like any other unauthenticated request, not a
//! failed handshake. It is verified per request ([`super::listener::Peer::front_proxy`]), as
//! Go's `tls.RequestClientCert` and k8s.io/apiserver's x509 authenticator do it.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use smi_tls::accept::SharedServerConfig;
use tokio::sync::watch;

use super::AggregatedApiError;
use crate::ca::Authority;
use crate::hub::Hub;

/// How often the serving certificate is renewed (it lives twice as long).
const RENEWAL: Duration = Duration::from_secs(12 * 3600);

/// The serving config: a certificate for `names` from `ca`.
pub(super) fn server_config(
    ca: &Authority,
    names: &[String],
) -> Result<ServerConfig, AggregatedApiError> {
    let (chain, key) = ca.issue_server(names, &[], 2 * RENEWAL)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(AnyClientCertificate {
        algorithms: provider.signature_verification_algorithms,
    });
    let tls = |e: rustls::Error| AggregatedApiError::Tls(e.to_string());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(tls)?;
    config.alpn_protocols = smi_tls::ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Re-issues the serving certificate every [`RENEWAL`], and when the control's CA is replaced
/// (the hub publishes the new bundle after the CA is swapped), until `stopping`.
pub(super) async fn renew(
    tls: SharedServerConfig,
    ca: Arc<ArcSwap<Authority>>,
    hub: Arc<Hub>,
    names: Vec<String>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut published = hub.subscribe();
    let mut issued_by = ca.load_full();
    let mut renewal = tokio::time::interval_at(tokio::time::Instant::now() + RENEWAL, RENEWAL);
    loop {
        tokio::select! {
            _ = renewal.tick() => {}
            changed = published.changed() => {
                if changed.is_err() {
                    return;
                }
                if Arc::ptr_eq(&issued_by, &ca.load_full()) {
                    continue;
                }
            }
            _ = stopping.wait_for(|stop| *stop) => return,
        }
        issued_by = ca.load_full();
        match server_config(&issued_by, &names) {
            Ok(config) => {
                tls.store(Arc::new(config));
                tracing::info!("aggregated API serving certificate issued");
            }
            Err(e) => {
                tracing::error!(error = %e, "aggregated API serving certificate not renewed; keeping the current one")
            }
        }
    }
}

/// Accepts any client certificate whose key signed the handshake; trusts none (see the
/// module's docs).
#[derive(Debug)]
struct AnyClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hint: Go's client then sends its certificate whatever its issuer.
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
