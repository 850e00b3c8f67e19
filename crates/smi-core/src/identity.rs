//! Workload identity: SPIFFE IDs of the form `spiffe://<trust-domain>/ns/<ns>/sa/<sa>`.
//!
//! SMI names identities as Kubernetes ServiceAccounts; the mesh carries them in certificates as
//! SPIFFE URIs in the Istio/SPIFFE layout (namespace first), not OSM's `<sa>/<ns>` order.

use std::fmt;
use std::str::FromStr;

/// The trust domain used when none is configured, as in Kubernetes' default cluster domain.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

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
        check_label(namespace, s)?;
        check_label(name, s)?;
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
        check_label(ns, s)?;
        check_label(sa, s)?;
        Ok(Self::new(trust_domain, ServiceAccount::new(ns, sa)))
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
    #[error(
        "{input:?}: {part:?} is not a valid name (lower-case letters, digits, '-' and '.'; 1-253 characters)"
    )]
    Label { input: String, part: String },
}

/// Kubernetes object names (RFC 1123 subdomains), which is what namespaces and accounts are.
fn check_label(part: &str, input: &str) -> Result<(), IdentityError> {
    let ok = !part.is_empty()
        && part.len() <= 253
        && part
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !part.starts_with(['-', '.'])
        && !part.ends_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(IdentityError::Label {
            input: input.to_owned(),
            part: part.to_owned(),
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
    }
}
