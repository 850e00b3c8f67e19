//! What a verified peer certificate says: its SPIFFE ID, the services it may serve, its expiry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::CertificateDer;
use smi_core::{ServiceAccount, SpiffeId};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Identity facts from a certificate whose chain TLS has already verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    pub spiffe_id: SpiffeId,
    /// Services from DNS SANs of the form `name.ns.svc.<cluster-domain>`.
    pub serves: Vec<ServiceAccount>,
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
                    let mut labels = dns.splitn(4, '.');
                    if let (Some(name), Some(ns), Some("svc")) =
                        (labels.next(), labels.next(), labels.next())
                    {
                        serves.push(ServiceAccount::new(ns, name));
                    }
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
