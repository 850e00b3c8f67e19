//! Workload identity: SPIFFE IDs of the form `spiffe://<trust-domain>/ns/<ns>/sa/<sa>`, and the
//! services a workload may serve, carried in certificates as `<svc>.<ns>.svc.<cluster-domain>`.
//!
//! SMI names identities as Kubernetes ServiceAccounts; the mesh carries them in certificates as
//! SPIFFE URIs in the Istio/SPIFFE layout (namespace first), not OSM's `<sa>/<ns>` order.
//!
//! Names are validated as Kubernetes validates them: namespaces and services are DNS-1123 labels
//! (no dots), ServiceAccounts DNS-1123 subdomains. That is what keeps a service's DNS name
//! unambiguous: `a.b.svc.<domain>` can only be service `a` in namespace `b`.

use std::fmt;
use std::str::FromStr;

/// The trust domain used when none is configured, as in Kubernetes' default cluster domain.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// The DNS suffix of services (`<svc>.<ns>.svc.<cluster-domain>`) when none is configured.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// The control service's own identity, `smi-system/smi-control`: workloads accept a control only
/// by this SPIFFE ID, so the CA never issues it to a workload (see [`ServiceAccount::is_control`]).
pub const CONTROL_ACCOUNT: (&str, &str) = ("smi-system", "smi-control");

/// The control service's SPIFFE ID in `trust_domain`.
pub fn control_spiffe_id(trust_domain: &str) -> SpiffeId {
    ServiceAccount::new(CONTROL_ACCOUNT.0, CONTROL_ACCOUNT.1).spiffe_id(trust_domain)
}

/// A ServiceAccount, the SMI unit of identity: `namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceAccount {
    pub namespace: String,
    pub name: String,
}

impl ServiceAccount {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Is this the control service's reserved identity, which no workload may hold?
    pub fn is_control(&self) -> bool {
        (self.namespace.as_str(), self.name.as_str()) == CONTROL_ACCOUNT
    }

    /// The SPIFFE ID of this account in `trust_domain`.
    pub fn spiffe_id(&self, trust_domain: &str) -> SpiffeId {
        SpiffeId {
            trust_domain: trust_domain.to_owned(),
            account: self.clone(),
        }
    }
}

impl fmt::Display for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl FromStr for ServiceAccount {
    type Err = IdentityError;

    /// Parses `namespace/name`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (namespace, name) = s
            .split_once('/')
            .ok_or_else(|| IdentityError::AccountSyntax(s.to_owned()))?;
        check_name(namespace, NameKind::Label, s)?;
        check_name(name, NameKind::Subdomain, s)?;
        Ok(Self::new(namespace, name))
    }
}

/// A workload's SPIFFE ID: trust domain plus ServiceAccount.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    pub trust_domain: String,
    pub account: ServiceAccount,
}

impl SpiffeId {
    pub fn new(trust_domain: impl Into<String>, account: ServiceAccount) -> Self {
        Self {
            trust_domain: trust_domain.into(),
            account,
        }
    }

    pub fn namespace(&self) -> &str {
        &self.account.namespace
    }

    pub fn service_account(&self) -> &str {
        &self.account.name
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.account.namespace, self.account.name
        )
    }
}

impl FromStr for SpiffeId {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || IdentityError::SpiffeSyntax(s.to_owned());
        let rest = s.strip_prefix("spiffe://").ok_or_else(bad)?;
        let (trust_domain, path) = rest.split_once('/').ok_or_else(bad)?;
        let mut parts = path.split('/');
        let (Some("ns"), Some(ns), Some("sa"), Some(sa), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad());
        };
        check_trust_domain(trust_domain, s)?;
        check_name(ns, NameKind::Label, s)?;
        check_name(sa, NameKind::Subdomain, s)?;
        Ok(Self::new(trust_domain, ServiceAccount::new(ns, sa)))
    }
}

/// A Kubernetes Service, `namespace/name`, both DNS-1123 labels: what a workload may serve and
/// what it calls.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
}

impl ServiceRef {
    /// Unchecked; parse `namespace/name` with `str::parse` to validate.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The DNS name this service has in certificates: `<name>.<namespace>.svc.<cluster_domain>`.
    pub fn dns_name(&self, cluster_domain: &str) -> String {
        format!("{}.{}.svc.{cluster_domain}", self.name, self.namespace)
    }

    /// The service a certificate DNS name stands for: exactly `<name>.<namespace>.svc.` followed
    /// by `cluster_domain`, both names valid labels; anything else is not a service name.
    pub fn from_dns_name(dns: &str, cluster_domain: &str) -> Option<Self> {
        let rest = dns.strip_suffix(cluster_domain)?.strip_suffix(".svc.")?;
        let (name, namespace) = rest.split_once('.')?;
        let valid = |part: &str| check_name(part, NameKind::Label, dns).is_ok();
        (valid(name) && valid(namespace)).then(|| Self::new(namespace, name))
    }
}

impl fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl FromStr for ServiceRef {
    type Err = IdentityError;

    /// Parses `namespace/name`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (namespace, name) = s
            .split_once('/')
            .ok_or_else(|| IdentityError::ServiceSyntax(s.to_owned()))?;
        check_name(namespace, NameKind::Label, s)?;
        check_name(name, NameKind::Label, s)?;
        Ok(Self::new(namespace, name))
    }
}

/// Why an identity string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "{0:?} is not a SPIFFE ID of the form spiffe://<trust-domain>/ns/<namespace>/sa/<name>"
    )]
    SpiffeSyntax(String),
    #[error("{0:?} is not a ServiceAccount of the form <namespace>/<name>")]
    AccountSyntax(String),
    #[error("{0:?} is not a service of the form <namespace>/<name>")]
    ServiceSyntax(String),
    #[error("{input:?}: {part:?} is not a valid {kind}")]
    Name {
        input: String,
        part: String,
        kind: NameKind,
    },
}

/// The two shapes of Kubernetes names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    /// RFC 1123 label (namespaces, services): `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63.
    Label,
    /// RFC 1123 subdomain (ServiceAccounts, resource names): labels joined by `.`, at most 253.
    Subdomain,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Label => {
                "DNS-1123 label (lower-case letters, digits and '-', starting and ending with a letter or digit; at most 63 characters)"
            }
            NameKind::Subdomain => {
                "DNS-1123 subdomain (DNS-1123 labels joined by '.'; at most 253 characters)"
            }
        })
    }
}

impl NameKind {
    /// Does `name` have this shape?
    pub fn admits(self, name: &str) -> bool {
        match self {
            NameKind::Label => is_label(name),
            NameKind::Subdomain => name.len() <= 253 && name.split('.').all(is_label),
        }
    }
}

fn is_label(part: &str) -> bool {
    let bytes = part.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

fn check_name(part: &str, kind: NameKind, input: &str) -> Result<(), IdentityError> {
    if kind.admits(part) {
        Ok(())
    } else {
        Err(IdentityError::Name {
            input: input.to_owned(),
            part: part.to_owned(),
            kind,
        })
    }
}

fn check_trust_domain(td: &str, input: &str) -> Result<(), IdentityError> {
    let ok = !td.is_empty()
        && td
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(IdentityError::SpiffeSyntax(input.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_id_round_trips() {
        let s = "spiffe://cluster.local/ns/bookstore/sa/bookbuyer";
        let id: SpiffeId = s.parse().unwrap();
        assert_eq!(id.trust_domain, "cluster.local");
        assert_eq!(id.namespace(), "bookstore");
        assert_eq!(id.service_account(), "bookbuyer");
        assert_eq!(id.to_string(), s);
    }

    #[test]
    fn spiffe_id_refuses_other_layouts() {
        for bad in [
            "spiffe://cluster.local/bookbuyer/bookstore",
            "spiffe://cluster.local/ns/a/sa/b/extra",
            "http://cluster.local/ns/a/sa/b",
            "spiffe:///ns/a/sa/b",
            "spiffe://cluster.local/ns//sa/b",
            "spiffe://cluster.local/ns/A/sa/b",
            "spiffe://Cluster.Local/ns/a/sa/b",
        ] {
            assert!(bad.parse::<SpiffeId>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn account_parses_namespace_slash_name() {
        let a: ServiceAccount = "default/prometheus".parse().unwrap();
        assert_eq!(a, ServiceAccount::new("default", "prometheus"));
        assert_eq!(
            a.spiffe_id("example.org").to_string(),
            "spiffe://example.org/ns/default/sa/prometheus"
        );
        assert!("prometheus".parse::<ServiceAccount>().is_err());
        assert!("a/b/c".parse::<ServiceAccount>().is_err());
        // Namespaces are labels; account names may have dots.
        assert!("a.b/c".parse::<ServiceAccount>().is_err());
        assert!("a/b.c".parse::<ServiceAccount>().is_ok());
        let long = format!("a/{}.{}", "x".repeat(63), "y".repeat(63));
        assert!(long.parse::<ServiceAccount>().is_ok());
        assert!(
            format!("{}/b", "x".repeat(64))
                .parse::<ServiceAccount>()
                .is_err()
        );
    }

    #[test]
    fn services_are_labels_so_their_dns_names_are_unambiguous() {
        assert_eq!(
            "bookstore/bookstore-v1".parse::<ServiceRef>(),
            Ok(ServiceRef::new("bookstore", "bookstore-v1"))
        );
        for bad in [
            "evil/bookstore-v1.bookstore.svc.x",
            "evil.ns/web",
            "ns/-web",
            "ns/Web",
            "ns/",
            "web",
        ] {
            assert!(bad.parse::<ServiceRef>().is_err(), "{bad}");
        }
        let svc = ServiceRef::new("bookstore", "bookstore-v1");
        let dns = svc.dns_name("cluster.local");
        assert_eq!(dns, "bookstore-v1.bookstore.svc.cluster.local");
        assert_eq!(ServiceRef::from_dns_name(&dns, "cluster.local"), Some(svc));
    }

    #[test]
    fn a_dns_name_is_parsed_by_its_exact_suffix() {
        let parse = |dns: &str| ServiceRef::from_dns_name(dns, "cluster.local");
        // What an unvalidated service name `bookstore-v1.bookstore.svc.x` in namespace `evil`
        // once produced: it must not read as bookstore/bookstore-v1.
        assert_eq!(
            parse("bookstore-v1.bookstore.svc.x.evil.svc.cluster.local"),
            None
        );
        assert_eq!(parse("bookstore-v1.bookstore.svc.example.org"), None);
        assert_eq!(parse("bookstore-v1.bookstore.svc.cluster.local.evil"), None);
        assert_eq!(parse("bookstore.svc.cluster.local"), None);
        assert_eq!(parse("localhost"), None);
        assert_eq!(
            ServiceRef::from_dns_name("web.shop.svc.example.org", "example.org"),
            Some(ServiceRef::new("shop", "web"))
        );
    }
}
