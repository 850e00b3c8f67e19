//! What a verified peer certificate says: its SPIFFE ID, the services it may serve, its expiry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::CertificateDer;
use smi_core::san::{WORKLOAD_OID, workload_from_extension};
use smi_core::telemetry::Workload;
use smi_core::{DEFAULT_CLUSTER_DOMAIN, SanError, ServiceRef, SpiffeId, WorkloadNames};
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::Oid;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Identity facts from a certificate whose chain TLS has already verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    pub spiffe_id: SpiffeId,
    /// Services from DNS SANs of the form `name.ns.svc.<cluster-domain>`.
    pub serves: Vec<ServiceRef>,
    pub not_after: SystemTime,
    /// The workload and pod the CA wrote down for it, when it did (`smi_core::san`).
    pub workload: Option<Workload>,
}

/// Why a peer certificate names no usable identity.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerIdentityError {
    #[error("the peer presented no certificate")]
    NoCertificate,
    #[error("unparseable certificate: {0}")]
    Unparseable(String),
    #[error(transparent)]
    Names(#[from] SanError),
    /// Only a resumed TLS session can get here (a full handshake checks validity): the
    /// certificate it was made with has expired since.
    #[error("the peer's certificate expired (a TLS session resumed after its certificate's end)")]
    Expired,
}

/// Reads the leaf's SPIFFE URI SAN (exactly one is required) and service DNS SANs, by the
/// convention the CA issues with ([`WorkloadNames`]).
pub fn peer_identity(leaf: &CertificateDer<'_>) -> Result<PeerIdentity, PeerIdentityError> {
    let (_, cert) = X509Certificate::from_der(leaf)
        .map_err(|e| PeerIdentityError::Unparseable(e.to_string()))?;
    let mut uris = Vec::new();
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(uri) => uris.push(*uri),
                GeneralName::DNSName(dns) => dns_names.push(*dns),
                _ => {}
            }
        }
    }
    let names = WorkloadNames::from_sans(uris, dns_names, DEFAULT_CLUSTER_DOMAIN)?;
    let secs = u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0);
    let workload = Oid::from(WORKLOAD_OID).ok().and_then(|oid| {
        let ext = cert.extensions().iter().find(|e| e.oid == oid)?;
        workload_from_extension(ext.value, names.spiffe_id.namespace())
    });
    Ok(PeerIdentity {
        workload,
        spiffe_id: names.spiffe_id,
        serves: names.serves,
        not_after: UNIX_EPOCH + Duration::from_secs(secs),
    })
}

/// Who is on the other end of a completed handshake, full or resumed: the leaf's identity, if
/// the certificate is still valid at `now`. A resumed session carries the certificate of the
/// handshake that made it, which may have expired since; rustls does not check it again.
pub fn session_peer(
    session: &rustls::CommonState,
    now: SystemTime,
) -> Result<PeerIdentity, PeerIdentityError> {
    let leaf = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or(PeerIdentityError::NoCertificate)?;
    current(peer_identity(leaf)?, now)
}

/// `identity` if its certificate is valid at `now`.
fn current(identity: PeerIdentity, now: SystemTime) -> Result<PeerIdentity, PeerIdentityError> {
    // notAfter is the last valid moment (RFC 5280), as webpki reads it.
    if identity.not_after < now {
        return Err(PeerIdentityError::Expired);
    }
    Ok(identity)
}

/// The SPIFFE ID of a verified peer's leaf certificate (rustls' `peer_certificates()`).
pub fn peer_spiffe_id(
    certificates: Option<&[CertificateDer<'_>]>,
) -> Result<SpiffeId, PeerIdentityError> {
    let leaf = certificates
        .and_then(|c| c.first())
        .ok_or(PeerIdentityError::NoCertificate)?;
    Ok(peer_identity(leaf)?.spiffe_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use smi_core::ServiceAccount;

    #[test]
    fn an_identity_is_current_until_its_certificate_ends() {
        let end = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let identity = PeerIdentity {
            spiffe_id: ServiceAccount::new("bookstore", "bookstore").spiffe_id("cluster.local"),
            serves: Vec::new(),
            not_after: end,
            workload: None,
        };
        let before = end - Duration::from_secs(1);
        assert_eq!(current(identity.clone(), before).unwrap(), identity);
        assert_eq!(current(identity.clone(), end).unwrap(), identity);
        assert_eq!(
            current(identity, end + Duration::from_secs(1)),
            Err(PeerIdentityError::Expired)
        );
    }
}
