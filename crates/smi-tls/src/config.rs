//! One builder for every mTLS configuration of the mesh.
//!
//! | role            | presents            | requires of the peer                                  |
//! |-----------------|---------------------|-------------------------------------------------------|
//! | workload server | its SVID            | a client certificate chaining to the bundle          |
//! | workload client | its SVID            | a chain to the bundle; the SPIFFE ID bound to the endpoint is checked by the caller right after the handshake |
//! | control server  | the control's cert  | a client certificate optional (first contact has none), verified when presented |
//! | control client  | its SVID, or none   | a chain to the bundle carrying the control's own SPIFFE ID |
//!
//! Mesh certificates name workloads by SPIFFE URI SAN, not by DNS name, so client-side
//! verification checks the chain whatever name was dialled. Every role is TLS 1.3 only.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::verify::BundleVerifier;

/// ALPN protocols workload servers offer, preferred first (the control API speaks `h2` only).
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

const H2_ONLY: [&[u8]; 1] = [b"h2"];

#[derive(Debug, thiserror::Error)]
#[error("TLS configuration: {0}")]
pub struct TlsError(String);

impl TlsError {
    fn from(e: impl std::fmt::Display) -> Self {
        TlsError(e.to_string())
    }
}

/// What we present: a certificate chain (leaf first) and its private key. The key is only ever
/// handed to rustls in this process.
#[derive(Debug)]
pub struct OwnCertificate {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for OwnCertificate {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

/// The trust bundle and crypto provider every configuration is built from.
#[derive(Clone, Debug)]
pub struct Mtls {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl Mtls {
    /// Trusting the roots of `bundle` (DER certificates).
    pub fn new<'a>(bundle: impl IntoIterator<Item = &'a [u8]>) -> Result<Self, TlsError> {
        let mut roots = RootCertStore::empty();
        for der in bundle {
            roots
                .add(CertificateDer::from(der.to_vec()))
                .map_err(|e| TlsError(format!("trust bundle: {e}")))?;
        }
        if roots.is_empty() {
            return Err(TlsError("an empty trust bundle".to_owned()));
        }
        Ok(Self {
            roots: Arc::new(roots),
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        })
    }

    /// A workload's inbound side: a client certificate chaining to the bundle is required.
    pub fn workload_server(&self, own: OwnCertificate) -> Result<ServerConfig, TlsError> {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), self.provider.clone())
                .build()
                .map_err(TlsError::from)?;
        self.server(verifier, own, &ALPN)
    }

    /// A workload's outbound side: presents `own`; accepts a server chain that ends in the
    /// bundle. The caller checks the server's SPIFFE ID (`peer_spiffe_id`) against the
    /// endpoint's before sending any request byte.
    pub fn workload_client(&self, own: OwnCertificate) -> Result<ClientConfig, TlsError> {
        let verifier = BundleVerifier::new(self.roots.clone(), self.provider.clone(), None);
        let mut config = self
            .client_builder(verifier)?
            .with_client_auth_cert(own.chain, own.key)
            .map_err(TlsError::from)?;
        config.alpn_protocols = protocols(&ALPN);
        Ok(config)
    }

    /// The control API's server: client certificates optional (first contact has none, a join
    /// token is its credential) but verified against the bundle when presented.
    pub fn control_server(&self, own: OwnCertificate) -> Result<ServerConfig, TlsError> {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), self.provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(TlsError::from)?;
        self.server(verifier, own, &H2_ONLY)
    }

    /// The workload's side of the control API: the server's chain must end in the bundle and
    /// its leaf must carry the control's own SPIFFE ID in `trust_domain` (which the CA never
    /// issues to a workload), whatever DNS name or IP was dialled. `own` is the workload's
    /// certificate (renewal, Watch, Register); `None` is first contact with a join token.
    pub fn control_client(
        &self,
        own: Option<OwnCertificate>,
        trust_domain: &str,
    ) -> Result<ClientConfig, TlsError> {
        let verifier = BundleVerifier::new(
            self.roots.clone(),
            self.provider.clone(),
            Some(smi_core::control_spiffe_id(trust_domain)),
        );
        let builder = self.client_builder(verifier)?;
        let mut config = match own {
            Some(own) => builder
                .with_client_auth_cert(own.chain, own.key)
                .map_err(TlsError::from)?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = protocols(&H2_ONLY);
        Ok(config)
    }

    fn server(
        &self,
        verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
        own: OwnCertificate,
        alpn: &[&[u8]],
    ) -> Result<ServerConfig, TlsError> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(TlsError::from)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(own.chain, own.key)
            .map_err(TlsError::from)?;
        config.alpn_protocols = protocols(alpn);
        Ok(config)
    }

    fn client_builder(
        &self,
        verifier: BundleVerifier,
    ) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>, TlsError>
    {
        Ok(ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(TlsError::from)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier)))
    }
}

fn protocols(alpn: &[&[u8]]) -> Vec<Vec<u8>> {
    alpn.iter().map(|p| p.to_vec()).collect()
}
