//! A CA the operator provides instead of the state directory's root.

use std::fs;
use std::path::Path;

use rcgen::{Issuer, KeyPair};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::Authority;
use crate::files::state_files::io;
use crate::traits::StoreError;

/// A CA the operator provides (`--ca-cert`/`--ca-key`, PEM): a root, or an intermediate with
/// the roots above it in `bundle` (PEM, optional; without it the CA certificate is the anchor).
pub fn load_provided(
    cert: &Path,
    key: &Path,
    bundle: Option<&Path>,
    trust_domain: &str,
) -> Result<Authority, StoreError> {
    let read = |p: &Path| fs::read_to_string(p).map_err(|source| io(p, source));
    let invalid = |p: &Path, message: String| StoreError::Invalid {
        path: p.to_owned(),
        message,
    };
    let cert_pem = read(cert)?;
    let signing_key = KeyPair::from_pem(&read(key)?).map_err(|e| invalid(key, e.to_string()))?;
    let issuer = Issuer::from_ca_cert_pem(&cert_pem, signing_key)
        .map_err(|e| invalid(cert, e.to_string()))?;
    let ca_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| invalid(cert, e.to_string()))?;
    let roots = match bundle {
        Some(path) => CertificateDer::pem_slice_iter(read(path)?.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(path, e.to_string()))?,
        None => vec![ca_der.clone()],
    };
    if roots.is_empty() {
        return Err(invalid(bundle.unwrap_or(cert), "no certificates".into()));
    }
    // An intermediate travels with every leaf so peers can chain up to the roots they trust.
    let intermediates = if roots.contains(&ca_der) {
        Vec::new()
    } else {
        vec![ca_der]
    };
    Ok(Authority::new(issuer, intermediates, roots, trust_domain))
}
