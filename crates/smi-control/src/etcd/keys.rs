//! Where everything is in etcd, under the prefix (`/smi-mesh/` by default):
//!
//! | key | value |
//! |---|---|
//! | `ca` | the CA's roots (as `ca.json` in a state directory), sealed |
//! | `token-key` | the join-token key, sealed |
//! | `revoked` | the deny list (as `revoked.json`) |
//! | `token-uses/<jti>` | `{"used": N, "expires_unix": T}` |
//! | `policy/<Kind>/<namespace>/<name>` | one SMI resource, JSON |
//! | `endpoints/<replica>/<namespace>/<service>` | one replica's registrations of a service, under its lease |
//!
//! Sealed values are encrypted with the key every replica is given ([`super::SealKey`]):
//! someone who can read etcd, or its backups, cannot sign certificates or make join tokens.

use smi_core::ServiceRef;

use super::mirror::Class;

/// The key layout under one prefix.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

pub const CA: &str = "ca";
pub const TOKEN_KEY: &str = "token-key";
pub const REVOKED: &str = "revoked";
pub const TOKEN_USES: &str = "token-uses/";
pub const POLICY: &str = "policy/";
pub const ENDPOINTS: &str = "endpoints/";

impl Keys {
    /// `prefix` gets a trailing `/` if it has none, so that `/a` and `/ab` do not overlap.
    pub fn new(prefix: &str) -> Self {
        let mut prefix = prefix.to_owned();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Self { prefix }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn ca(&self) -> String {
        format!("{}{CA}", self.prefix)
    }

    pub fn token_key(&self) -> String {
        format!("{}{TOKEN_KEY}", self.prefix)
    }

    pub fn revoked(&self) -> String {
        format!("{}{REVOKED}", self.prefix)
    }

    pub fn token_use(&self, jti: &str) -> String {
        format!("{}{TOKEN_USES}{jti}", self.prefix)
    }

    pub fn policy_prefix(&self) -> String {
        format!("{}{POLICY}", self.prefix)
    }

    /// One resource's key: kind, namespace and name, as Kubernetes names an object.
    pub fn policy(&self, kind: &str, namespace: &str, name: &str) -> String {
        format!("{}{POLICY}{kind}/{namespace}/{name}", self.prefix)
    }

    pub fn endpoints_prefix(&self) -> String {
        format!("{}{ENDPOINTS}", self.prefix)
    }

    /// One replica's registrations of `service`.
    pub fn endpoints(&self, replica: &str, service: &ServiceRef) -> String {
        format!(
            "{}{ENDPOINTS}{replica}/{}/{}",
            self.prefix, service.namespace, service.name
        )
    }

    /// What a key under the prefix holds, from its name; `None` for a key the control does not
    /// know (left alone).
    pub fn class(&self, key: &str) -> Option<Class> {
        let relative = key.strip_prefix(&self.prefix)?;
        if relative == CA || relative == TOKEN_KEY || relative == REVOKED {
            Some(Class::State)
        } else if relative.starts_with(TOKEN_USES) {
            Some(Class::Ledger)
        } else if relative.starts_with(POLICY) {
            Some(Class::Policy)
        } else if relative.starts_with(ENDPOINTS) {
            Some(Class::Endpoints)
        } else {
            None
        }
    }

    /// The service an endpoints key is for, and the replica that wrote it.
    pub fn parse_endpoints<'k>(&self, key: &'k str) -> Option<(&'k str, ServiceRef)> {
        let relative = key.strip_prefix(&self.prefix)?.strip_prefix(ENDPOINTS)?;
        let mut parts = relative.splitn(3, '/');
        let replica = parts.next()?;
        let namespace = parts.next()?;
        let name = parts.next()?;
        Some((replica, ServiceRef::new(namespace, name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_classified_by_their_place_under_the_prefix() {
        let keys = Keys::new("/mesh");
        assert_eq!(keys.ca(), "/mesh/ca");
        assert_eq!(keys.class("/mesh/ca"), Some(Class::State));
        assert_eq!(keys.class("/mesh/revoked"), Some(Class::State));
        assert_eq!(keys.class("/mesh/token-uses/abc"), Some(Class::Ledger));
        assert_eq!(
            keys.class(&keys.policy("TrafficTarget", "shop", "t")),
            Some(Class::Policy)
        );
        let service = ServiceRef::new("shop", "books");
        let key = keys.endpoints("r1", &service);
        assert_eq!(keys.class(&key), Some(Class::Endpoints));
        assert_eq!(keys.parse_endpoints(&key), Some(("r1", service)));
        assert_eq!(keys.class("/meshy/ca"), None);
        assert_eq!(keys.class("/mesh/other"), None);
    }
}
