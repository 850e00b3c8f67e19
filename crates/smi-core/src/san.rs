//! The certificate naming convention of workload certificates: what the CA writes into a
//! certificate's subject alternative names, and how a peer's certificate is read back. One
//! module does both, so that issuing and parsing cannot drift apart.
//!
//! A workload certificate carries exactly one SPIFFE URI SAN (its identity) and one DNS SAN per
//! service it may serve, `<name>.<namespace>.svc.<cluster-domain>`. Other SANs (the control's
//! own certificate has `localhost` and IPs) are not service names and are ignored.

use crate::identity::{IdentityError, ServiceRef, SpiffeId};

/// What a workload certificate names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadNames {
    pub spiffe_id: SpiffeId,
    /// The services the certificate lets its holder serve.
    pub serves: Vec<ServiceRef>,
}

/// The SANs to write into a certificate, as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sans {
    pub uris: Vec<String>,
    pub dns_names: Vec<String>,
}

/// Why a certificate's SANs do not name a workload.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SanError {
    #[error("the certificate must carry exactly one SPIFFE ID, it has {0}")]
    SpiffeIdCount(usize),
    #[error(transparent)]
    SpiffeId(#[from] IdentityError),
}

impl WorkloadNames {
    pub fn new(spiffe_id: SpiffeId, serves: Vec<ServiceRef>) -> Self {
        Self { spiffe_id, serves }
    }

    /// The SANs a certificate for these names gets.
    pub fn sans(&self, cluster_domain: &str) -> Sans {
        Sans {
            uris: vec![self.spiffe_id.to_string()],
            dns_names: self
                .serves
                .iter()
                .map(|service| service.dns_name(cluster_domain))
                .collect(),
        }
    }

    /// Reads the names from a certificate's URI and DNS SANs: exactly one `spiffe://` URI, and
    /// every DNS name of the service form (parsed by its exact suffix,
    /// [`ServiceRef::from_dns_name`]).
    pub fn from_sans<'a>(
        uris: impl IntoIterator<Item = &'a str>,
        dns_names: impl IntoIterator<Item = &'a str>,
        cluster_domain: &str,
    ) -> Result<Self, SanError> {
        let spiffe: Vec<&str> = uris
            .into_iter()
            .filter(|uri| uri.starts_with("spiffe://"))
            .collect();
        let [uri] = spiffe.as_slice() else {
            return Err(SanError::SpiffeIdCount(spiffe.len()));
        };
        let serves = dns_names
            .into_iter()
            .filter_map(|dns| ServiceRef::from_dns_name(dns, cluster_domain))
            .collect();
        Ok(Self {
            spiffe_id: uri.parse()?,
            serves,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{DEFAULT_CLUSTER_DOMAIN, ServiceAccount};

    #[test]
    fn what_is_issued_reads_back_the_same() {
        let names = WorkloadNames::new(
            ServiceAccount::new("bookstore", "bookstore").spiffe_id("cluster.local"),
            vec![
                ServiceRef::new("bookstore", "bookstore-v1"),
                ServiceRef::new("bookstore", "bookstore"),
            ],
        );
        let sans = names.sans(DEFAULT_CLUSTER_DOMAIN);
        assert_eq!(
            sans.dns_names,
            [
                "bookstore-v1.bookstore.svc.cluster.local",
                "bookstore.bookstore.svc.cluster.local"
            ]
        );
        let read = WorkloadNames::from_sans(
            sans.uris.iter().map(String::as_str),
            sans.dns_names.iter().map(String::as_str),
            DEFAULT_CLUSTER_DOMAIN,
        );
        assert_eq!(read, Ok(names));
    }

    #[test]
    fn a_certificate_names_exactly_one_spiffe_id_and_ignores_other_names() {
        let two = WorkloadNames::from_sans(
            [
                "spiffe://cluster.local/ns/a/sa/a",
                "spiffe://cluster.local/ns/b/sa/b",
            ],
            [],
            DEFAULT_CLUSTER_DOMAIN,
        );
        assert_eq!(two, Err(SanError::SpiffeIdCount(2)));
        assert_eq!(
            WorkloadNames::from_sans(["https://example.com"], [], DEFAULT_CLUSTER_DOMAIN),
            Err(SanError::SpiffeIdCount(0))
        );
        let read = WorkloadNames::from_sans(
            ["spiffe://cluster.local/ns/a/sa/a"],
            [
                "localhost",
                "evil.example.com",
                "x.y.svc.cluster.local.evil",
            ],
            DEFAULT_CLUSTER_DOMAIN,
        );
        assert_eq!(read.map(|n| n.serves), Ok(Vec::new()));
        assert!(matches!(
            WorkloadNames::from_sans(["spiffe://cluster.local/a"], [], DEFAULT_CLUSTER_DOMAIN),
            Err(SanError::SpiffeId(_))
        ));
    }
}
