//! What a verified peer certificate says: its SPIFFE ID, the services it may serve, its expiry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::CertificateDer;
use smi_core::{DEFAULT_CLUSTER_DOMAIN, ServiceRef, SpiffeId};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Identity facts from a certificate whose chain TLS has already verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    pub spiffe_id: SpiffeId,
    /// Services from DNS SANs of the form `name.ns.svc.<cluster-domain>` (parsed by that exact
    /// suffix: [`ServiceRef::from_dns_name`]).
    pub serves: Vec<ServiceRef>,
    pub not_after: SystemTime,
}

/// Reads the leaf's SPIFFE URI SAN (exactly one is required) and service DNS SANs.
pub fn peer_identity(leaf: &CertificateDer<'_>) -> Result<PeerIdentity, String> {
    let (_, cert) =
        X509Certificate::from_der(leaf).map_err(|e| format!("unparseable certificate: {e}"))?;
    let mut spiffe = Vec::new();
    let mut serves = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(uri) if uri.starts_with("spiffe://") => spiffe.push(*uri),
                GeneralName::DNSName(dns) => {
                    serves.extend(ServiceRef::from_dns_name(dns, DEFAULT_CLUSTER_DOMAIN));
                }
                _ => {}
            }
        }
    }
    let [uri] = spiffe.as_slice() else {
        return Err(format!(
            "the certificate must carry exactly one SPIFFE ID, it has {}",
            spiffe.len()
        ));
    };
    let spiffe_id = uri.parse::<SpiffeId>().map_err(|e| e.to_string())?;
    let secs = u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0);
    Ok(PeerIdentity {
        spiffe_id,
        serves,
        not_after: UNIX_EPOCH + Duration::from_secs(secs),
    })
}
