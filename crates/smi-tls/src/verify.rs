//! The client-side verifier of mesh servers: the chain must end in the trust bundle, whatever
//! name was dialled (mesh certificates name workloads by SPIFFE ID, not DNS name); optionally
//! the leaf must carry one expected SPIFFE ID (the control service's).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use smi_core::SpiffeId;

use crate::identity::peer_identity;

#[derive(Debug)]
pub(crate) struct BundleVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    expect: Option<SpiffeId>,
}

impl BundleVerifier {
    pub(crate) fn new(
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
        expect: Option<SpiffeId>,
    ) -> Self {
        Self {
            roots,
            provider,
            expect,
        }
    }
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

    // Only TLS 1.3 is offered; rustls still asks for this to be defined.
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
