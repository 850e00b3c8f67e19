//! rustls configurations made from a workload's credentials.
//!
//! Both sides verify the peer's chain against the mesh trust bundle. Mesh certificates name
//! workloads by SPIFFE URI SAN, not by DNS name, so the client-side verifier checks the chain only
//! and the caller checks the server's SPIFFE ID right after the handshake, before any request
//! byte is sent ([`peer_spiffe_id`]).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use smi_core::SpiffeId;

use crate::control::Credentials;
use crate::identity::peer_identity;

/// ALPN protocols mesh servers offer, preferred first.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

#[derive(Debug, thiserror::Error)]
#[error("TLS configuration: {0}")]
pub struct TlsError(String);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn roots(credentials: &Credentials) -> Result<Arc<RootCertStore>, TlsError> {
    roots_of(credentials.bundle_der())
}

fn roots_of(bundle: &[Vec<u8>]) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for der in bundle {
        roots
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| TlsError(format!("trust bundle: {e}")))?;
    }
    Ok(Arc::new(roots))
}

fn chain_and_key(
    credentials: &Credentials,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let chain = credentials
        .chain_der()
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(credentials.key_der()));
    (chain, key)
}

/// The inbound side: a client certificate chaining to the bundle is required.
pub fn server_config(credentials: &Credentials) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(roots(credentials)?, provider.clone())
            .build()
            .map_err(|e| TlsError(e.to_string()))?;
    let (chain, key) = chain_and_key(credentials);
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| TlsError(e.to_string()))?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The outbound side: presents our certificate; accepts a server chain that ends in the bundle
/// (its SPIFFE ID is checked by the caller against the endpoint's).
pub fn client_config(credentials: &Credentials) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let verifier = BundleVerifier {
        roots: roots(credentials)?,
        provider: provider.clone(),
        expect: None,
    };
    let (chain, key) = chain_and_key(credentials);
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(chain, key)
        .map_err(|e| TlsError(e.to_string()))?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The client side of the control API: the server's chain must end in `bundle` and its leaf must
/// carry the control's own SPIFFE ID (which the CA never issues to a workload), whatever DNS
/// name or IP was dialled. `client` presents a workload certificate (renewal, Watch, Register);
/// `None` is first contact with a join token.
pub fn control_client_config(
    bundle: &[Vec<u8>],
    trust_domain: &str,
    client: Option<&Credentials>,
) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let verifier = BundleVerifier {
        roots: roots_of(bundle)?,
        provider: provider.clone(),
        expect: Some(smi_core::control_spiffe_id(trust_domain)),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match client {
        Some(credentials) => {
            let (chain, key) = chain_and_key(credentials);
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsError(e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The SPIFFE ID of a verified peer's leaf certificate.
pub fn peer_spiffe_id(certificates: Option<&[CertificateDer<'_>]>) -> Result<SpiffeId, String> {
    let leaf = certificates
        .and_then(|c| c.first())
        .ok_or("the peer presented no certificate")?;
    Ok(peer_identity(leaf)?.spiffe_id)
}

/// Verifies the server's chain against the trust bundle, whatever name was asked for; with
/// `expect`, also that the leaf carries exactly that SPIFFE ID.
#[derive(Debug)]
struct BundleVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    expect: Option<SpiffeId>,
}

impl ServerCertVerifier for BundleVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        if let Some(expected) = &self.expect {
            let presented = peer_identity(end_entity)
                .map_err(|e| rustls::Error::General(format!("the server's certificate: {e}")))?
                .spiffe_id;
            if presented != *expected {
                return Err(rustls::Error::General(format!(
                    "the server is {presented}, not the control service ({expected})"
                )));
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
