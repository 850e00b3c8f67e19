//! [`CertificateRenewal`]: a workload presenting a certificate that the TLS handshake verified
//! against the trust bundle gets a new one for the same identity and services, as long as its
//! chain was first enrolled less than `max_chain_lifetime` ago.
//!
//! The handshake verifies against the current bundle: a certificate of a retired root is
//! refused there. During a rotation's overlap a certificate of the retiring root renews (into
//! one of the new root): that is how workloads migrate.

use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use rustls::pki_types::CertificateDer;
use smi_tls::peer_identity;

use super::{Grant, Refusal};
use crate::ca::first_enrolled;
use crate::traits::{Authenticator, Credential};

#[derive(Debug)]
pub struct CertificateRenewal {
    pub trust_domain: String,
    /// How long a chain of renewals may go on after its first enrollment.
    pub max_chain_lifetime: Duration,
}

impl CertificateRenewal {
    /// Decides a renewal by `leaf`, the verified client certificate.
    pub fn renew(&self, leaf: &CertificateDer<'_>) -> Result<Grant, Refusal> {
        let peer = peer_identity(leaf).map_err(|e| Refusal::BadCertificate(e.to_string()))?;
        if peer.spiffe_id.trust_domain != self.trust_domain {
            return Err(Refusal::ForeignTrustDomain {
                theirs: peer.spiffe_id.trust_domain,
                ours: self.trust_domain.clone(),
            });
        }
        let first = first_enrolled(leaf).map_err(Refusal::BadCertificate)?;
        let age = SystemTime::now()
            .duration_since(first)
            .unwrap_or(Duration::ZERO);
        if age > self.max_chain_lifetime {
            return Err(Refusal::ChainTooOld {
                age_secs: age.as_secs(),
                max_secs: self.max_chain_lifetime.as_secs(),
            });
        }
        Ok(Grant {
            identity: peer.spiffe_id.account,
            serves: peer.serves,
            via: "certificate".to_owned(),
            first_enrolled: first,
            token: None,
            workload: peer.workload,
            names_proven: false,
        })
    }
}

impl Authenticator for CertificateRenewal {
    fn accepts(&self) -> &'static str {
        "a workload certificate presented over mTLS with no token (renewal)"
    }

    /// A verified client certificate and no token: a call that sends a token is about the
    /// token, and goes to the authenticator of that kind of token.
    fn recognizes(&self, credential: &Credential<'_>) -> bool {
        credential.token.is_none() && credential.peer_leaf().is_some()
    }

    fn authenticate<'a>(
        &'a self,
        credential: &'a Credential<'a>,
    ) -> BoxFuture<'a, Result<Grant, Refusal>> {
        let decided = match credential.peer_leaf() {
            Some(leaf) => self.renew(leaf),
            None => Err(Refusal::NoCredential),
        };
        Box::pin(std::future::ready(decided))
    }
}
