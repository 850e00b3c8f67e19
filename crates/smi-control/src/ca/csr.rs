//! CSR parsing: rcgen checks the request's self-signature (proof that the workload holds the key);
//! we keep only the public key and the URI SANs it asked for (to refuse foreign identities).

use rcgen::{CertificateSigningRequestParams, SanType};
use rustls::pki_types::CertificateSigningRequestDer;

use super::CaError;

pub(super) struct Csr {
    pub public_key: rcgen::PublicKey,
    pub uris: Vec<String>,
}

pub(super) fn parse(der: &[u8]) -> Result<Csr, CaError> {
    let der = CertificateSigningRequestDer::from(der);
    let parsed = CertificateSigningRequestParams::from_der(&der)
        .map_err(|e| CaError::BadCsr(e.to_string()))?;
    let uris = parsed
        .params
        .subject_alt_names
        .iter()
        .filter_map(|san| match san {
            SanType::URI(uri) => Some(uri.as_str().to_owned()),
            _ => None,
        })
        .collect();
    Ok(Csr {
        public_key: parsed.public_key,
        uris,
    })
}
