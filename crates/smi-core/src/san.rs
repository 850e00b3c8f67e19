//! The certificate naming convention of workload certificates: what the CA writes into a
//! certificate's subject alternative names, and how a peer's certificate is read back. One
//! module does both, so that issuing and parsing cannot drift apart.
//!
//! A workload certificate carries exactly one SPIFFE URI SAN (its identity) and one DNS SAN per
//! service it may serve, `<name>.<namespace>.svc.<cluster-domain>`. Other SANs (the control's
//! own certificate has `localhost` and IPs) are not service names and are ignored.

use crate::identity::{IdentityError, ServiceRef, SpiffeId};
use crate::telemetry::Workload;

/// `1.3.6.1.4.1.32473.764.2`: a workload certificate's workload and pod names (under RFC 5612's
/// documentation number, as the control's first-enrollment extension `...764.1`).
pub const WORKLOAD_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 32473, 764, 2];

/// DER tag of `UTF8String`.
const UTF8_STRING: u8 = 0x0c;

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

/// The [`WORKLOAD_OID`] extension's value for `workload`: DER `UTF8String` `<workload>/<pod>`.
pub fn workload_extension(workload: &Workload) -> Vec<u8> {
    let text = format!("{}/{}", workload.name, workload.pod);
    let mut der = vec![UTF8_STRING];
    match text.len() {
        len @ 0..=127 => der.push(len as u8),
        len @ 128..=255 => der.extend([0x81, len as u8]),
        len => der.extend([0x82, (len >> 8) as u8, len as u8]),
    }
    der.extend_from_slice(text.as_bytes());
    der
}

/// Reads a [`WORKLOAD_OID`] extension's value back, in `namespace` (the SPIFFE ID's). `None`
/// for anything but a well-formed value with Kubernetes-valid names.
pub fn workload_from_extension(der: &[u8], namespace: &str) -> Option<Workload> {
    let (len, text) = match der {
        [UTF8_STRING, 0x81, len, text @ ..] if *len >= 128 => (usize::from(*len), text),
        [UTF8_STRING, 0x82, hi, lo, text @ ..] => (usize::from(*hi) << 8 | usize::from(*lo), text),
        [UTF8_STRING, len, text @ ..] if *len < 128 => (usize::from(*len), text),
        _ => return None,
    };
    if text.len() != len {
        return None;
    }
    let (name, pod) = std::str::from_utf8(text).ok()?.split_once('/')?;
    let workload = Workload::new(namespace, name, pod);
    workload.check().ok().map(|()| workload)
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
    fn workload_names_read_back_from_their_extension_and_bad_values_are_unknown() {
        let workload = Workload::new("bookstore", "bookstore-v1", "bookstore-v1-5d8f7c9b4-x2x7q");
        let der = workload_extension(&workload);
        assert_eq!(workload_from_extension(&der, "bookstore"), Some(workload));
        let long = Workload::new("ns", "w", "p".repeat(200));
        assert_eq!(
            workload_from_extension(&workload_extension(&long), "ns"),
            Some(long)
        );
        assert_eq!(
            workload_from_extension(&der[..der.len() - 1], "bookstore"),
            None
        );
        assert_eq!(
            workload_from_extension(b"\x0c\x03a/B", "ns"),
            None,
            "not a Kubernetes name"
        );
        assert_eq!(workload_from_extension(b"\x0c\x02ab", "ns"), None, "no pod");
        assert_eq!(
            workload_from_extension(b"\x04\x03a/b", "ns"),
            None,
            "not a UTF8String"
        );
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
