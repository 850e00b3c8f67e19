//! The certificate authority: a P-256 root (or a provided root or intermediate) that signs
//! short-lived workload certificates from CSRs, and the trust bundle workloads verify peers with.
//!
//! The SPIFFE URI SAN of a workload certificate comes from the authenticated identity, never from
//! the CSR; a CSR that asks for another identity is refused. DNS SANs name the services the
//! credential allows the workload to serve (`name.ns.svc.<cluster-domain>`), which is how the
//! endpoint registry checks a registration after enrollment. A custom extension carries when
//! the certificate's chain was first enrolled ([`lineage`]), and another, when the workload gave
//! them, its workload and pod names (`smi_core::san::WORKLOAD_OID`), which peers read from the
//! handshake for telemetry.

mod csr;
pub mod lineage;
mod provided;
mod root;
mod store;

/// The state store's error; its old path.
pub use crate::traits::StoreError;
pub use lineage::{FIRST_ENROLLED_OID, first_enrolled};
pub use provided::load_provided;
pub use store::CaStore;
pub(crate) use store::unix_now;
pub(crate) use store::{CaFile, TOKEN_KEY_LEN, decode_token_key};

use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use smi_core::san::{WORKLOAD_OID, workload_extension};
use smi_core::telemetry::{Workload, WorkloadError};
use smi_core::{
    DEFAULT_CLUSTER_DOMAIN, ServiceAccount, ServiceRef, SpiffeId, WorkloadNames, control_spiffe_id,
};

/// Why a certificate was not issued.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("the CSR is not a valid PKCS#10 request signed by its own key: {0}")]
    BadCsr(String),
    #[error("the CSR asks for {asked}, but the credential is for {granted}")]
    ForeignSan { asked: String, granted: String },
    #[error("{0} is the control service's own identity; no workload can hold it")]
    Reserved(ServiceAccount),
    #[error("names: {0}")]
    Names(#[from] WorkloadError),
    #[error("names: the workload is in namespace {asked:?}, but the identity is in {granted:?}")]
    ForeignNamespace { asked: String, granted: String },
    #[error("signing failed: {0}")]
    Sign(#[from] rcgen::Error),
}

/// A signed certificate, leaf first, and what it says.
#[derive(Clone, Debug)]
pub struct Issued {
    pub chain: Vec<CertificateDer<'static>>,
    pub not_after: SystemTime,
    pub spiffe_id: SpiffeId,
}

/// Signs certificates. Immutable: rotation builds a new one.
#[derive(Debug)]
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    /// Certificates between the signer and a trust anchor (empty when the signer is a root),
    /// with the signer itself first when it is an intermediate.
    intermediates: Vec<CertificateDer<'static>>,
    bundle: Vec<CertificateDer<'static>>,
    trust_domain: String,
    cluster_domain: String,
}

impl Authority {
    pub fn new(
        issuer: Issuer<'static, KeyPair>,
        intermediates: Vec<CertificateDer<'static>>,
        bundle: Vec<CertificateDer<'static>>,
        trust_domain: &str,
    ) -> Self {
        Self {
            issuer,
            intermediates,
            bundle,
            trust_domain: trust_domain.to_owned(),
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_owned(),
        }
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The roots workloads trust (during a rotation, the old and the new).
    pub fn bundle(&self) -> &[CertificateDer<'static>] {
        &self.bundle
    }

    /// The DNS name a served service gets in certificates.
    pub fn service_dns_name(&self, service: &ServiceRef) -> String {
        service.dns_name(&self.cluster_domain)
    }

    /// Signs a workload certificate for `identity` from a CSR (DER), the first of its chain
    /// (first enrolled now).
    pub fn issue_workload(
        &self,
        csr_der: &[u8],
        identity: &ServiceAccount,
        serves: &[ServiceRef],
        ttl: Duration,
    ) -> Result<Issued, CaError> {
        self.issue_workload_since(csr_der, identity, serves, ttl, SystemTime::now())
    }

    /// Signs a workload certificate for `identity` from a CSR (DER), saying that its chain was
    /// first enrolled at `first_enrolled` (a renewal copies it from the certificate it renews).
    pub fn issue_workload_since(
        &self,
        csr_der: &[u8],
        identity: &ServiceAccount,
        serves: &[ServiceRef],
        ttl: Duration,
        first_enrolled: SystemTime,
    ) -> Result<Issued, CaError> {
        self.issue_workload_named(csr_der, identity, serves, ttl, first_enrolled, None)
    }

    /// [`Authority::issue_workload_since`], writing the names of `workload` (its workload and
    /// pod, in the identity's namespace; checked) into the certificate when given.
    pub fn issue_workload_named(
        &self,
        csr_der: &[u8],
        identity: &ServiceAccount,
        serves: &[ServiceRef],
        ttl: Duration,
        first_enrolled: SystemTime,
        workload: Option<&Workload>,
    ) -> Result<Issued, CaError> {
        // Workloads pin the control by this identity: a workload holding it could pose as the
        // control to every other workload.
        if identity.is_control() {
            return Err(CaError::Reserved(identity.clone()));
        }
        let spiffe_id = identity.spiffe_id(&self.trust_domain);
        let csr = csr::parse(csr_der)?;
        let granted = spiffe_id.to_string();
        for asked in &csr.uris {
            if *asked != granted {
                return Err(CaError::ForeignSan {
                    asked: asked.clone(),
                    granted,
                });
            }
        }
        // The naming convention that peers read back with (`smi_core::san`).
        let names =
            WorkloadNames::new(spiffe_id.clone(), serves.to_vec()).sans(&self.cluster_domain);
        let mut sans = Vec::new();
        for uri in names.uris {
            sans.push(SanType::URI(uri.try_into()?));
        }
        for dns in names.dns_names {
            sans.push(SanType::DnsName(dns.try_into()?));
        }
        let mut params = leaf_params(sans, ttl, &identity.to_string());
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params
            .custom_extensions
            .push(lineage::first_enrolled_extension(first_enrolled));
        if let Some(workload) = workload {
            if workload.namespace != identity.namespace {
                return Err(CaError::ForeignNamespace {
                    asked: workload.namespace.clone(),
                    granted: identity.namespace.clone(),
                });
            }
            workload.check()?;
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    WORKLOAD_OID,
                    workload_extension(workload),
                ));
        }
        let not_after = SystemTime::now() + ttl;
        let cert = params.signed_by(&csr.public_key, &self.issuer)?;
        let mut chain = vec![cert.der().clone()];
        chain.extend(self.intermediates.iter().cloned());
        Ok(Issued {
            chain,
            not_after,
            spiffe_id,
        })
    }

    /// Signs the control service's own serving certificate (key made here, kept in memory).
    pub fn issue_server(
        &self,
        dns_names: &[String],
        ips: &[std::net::IpAddr],
        ttl: Duration,
    ) -> Result<(Vec<CertificateDer<'static>>, KeyPair), CaError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let spiffe = control_spiffe_id(&self.trust_domain).to_string();
        let mut sans = vec![SanType::URI(spiffe.as_str().try_into()?)];
        for name in dns_names {
            sans.push(SanType::DnsName(name.as_str().try_into()?));
        }
        sans.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        let mut params = leaf_params(sans, ttl, "smi-control");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer)?;
        let mut chain = vec![cert.der().clone()];
        chain.extend(self.intermediates.iter().cloned());
        Ok((chain, key))
    }
}

fn leaf_params(sans: Vec<SanType>, ttl: Duration, common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    // A minute of slack for clocks that are slightly behind ours.
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + ttl;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
    params.use_authority_key_identifier_extension = true;
    params
}

pub(crate) fn random_serial() -> [u8; 16] {
    let mut serial = [0u8; 16];
    // aws-lc's RNG; a failure here means the process has no entropy, which is fatal anyway.
    let _ = aws_lc_rs::rand::fill(&mut serial);
    serial[0] &= 0x7f; // positive INTEGER
    serial
}

#[cfg(test)]
mod tests;
