//! Test fixtures: a CA issuing workload certificates with the SAN convention of
//! `smi_core::san` (rcgen, P-256).
#![allow(dead_code)] // each test file uses part of it

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use smi_core::{ServiceAccount, ServiceRef, WorkloadNames};
use smi_tls::{Mtls, OwnCertificate};

pub struct Ca {
    pub issuer: Issuer<'static, KeyPair>,
    pub der: CertificateDer<'static>,
}

impl Ca {
    pub fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let cert = params.self_signed(&key).unwrap();
        Self {
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    pub fn mtls(&self) -> Mtls {
        Mtls::new([self.der.as_ref()]).unwrap()
    }

    /// A certificate naming `names` exactly as the control's CA names workloads.
    pub fn issue(&self, names: &WorkloadNames) -> OwnCertificate {
        let sans = names.sans(smi_core::DEFAULT_CLUSTER_DOMAIN);
        let mut params = CertificateParams::new(sans.dns_names).unwrap();
        for uri in sans.uris {
            params
                .subject_alt_names
                .push(SanType::URI(uri.try_into().unwrap()));
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        OwnCertificate {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }
}

pub fn workload(ns: &str, sa: &str, serves: &[(&str, &str)]) -> WorkloadNames {
    WorkloadNames::new(
        ServiceAccount::new(ns, sa).spiffe_id("cluster.local"),
        serves
            .iter()
            .map(|(n, s)| ServiceRef::new(*n, *s))
            .collect(),
    )
}
