//! A new root CA: P-256, ten years, path length 0 (it signs only leaves).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

use super::random_serial;
use super::store::Root;
use crate::traits::StoreError;

const ROOT_VALIDITY_DAYS: i64 = 3650;

pub(super) fn new_root(trust_domain: &str) -> Result<Root, StoreError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "smi-mesh");
    // Distinct subjects per root: OpenSSL mistakes certificates with equal subjects for each other.
    let serial = random_serial();
    dn.push(
        DnType::CommonName,
        format!(
            "smi-mesh root {trust_domain} {:02x}{:02x}{:02x}{:02x}",
            serial[1], serial[2], serial[3], serial[4]
        ),
    );
    params.distinguished_name = dn;
    // pathLen 0: the root signs only leaves (workloads, the API), never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + time::Duration::days(ROOT_VALIDITY_DAYS);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let cert = params.self_signed(&key)?;
    Ok(Root {
        cert_pem: cert.pem(),
        key_pem: Some(key.serialize_pem()),
        retire_after_unix: None,
    })
}
