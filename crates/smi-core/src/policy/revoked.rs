//! Revoked identities: the control's deny list, compiled into the snapshot so that a decision
//! refuses a revoked source with one hash lookup (none while nothing is revoked).

use super::Snapshot;
use super::keys::{NameKey, NameRef};
use crate::identity::SpiffeId;

impl Snapshot {
    /// The same snapshot, refusing `revoked` identities: [`Snapshot::authorize`] denies them
    /// first ([`Denied::Revoked`](super::Denied::Revoked)), permissive mode included, and
    /// [`Snapshot::admits_any`] is false for them. Identities of other trust domains are left
    /// out: they are refused anyway.
    #[must_use]
    pub fn with_revoked<'a>(mut self, revoked: impl IntoIterator<Item = &'a SpiffeId>) -> Self {
        let td = self.options.trust_domain.as_str();
        self.revoked = revoked
            .into_iter()
            .filter(|id| id.trust_domain == td)
            .map(|id| NameKey::new(id.namespace(), id.service_account()))
            .collect();
        self
    }

    /// Whether `identity` is revoked. No allocation; no hashing while nothing is revoked.
    pub fn is_revoked(&self, identity: &SpiffeId) -> bool {
        !self.revoked.is_empty()
            && identity.trust_domain == self.options.trust_domain
            && self.revoked.contains(&NameRef {
                namespace: identity.namespace(),
                name: identity.service_account(),
            })
    }

    /// How many identities are revoked.
    pub fn revoked_count(&self) -> usize {
        self.revoked.len()
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use crate::identity::ServiceAccount;
    use crate::policy::{Denied, HttpRequest, Options, Request};
    use crate::{Format, Snapshot, load_str};

    const POLICY: &str = "
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: routes, namespace: shop}
spec:
  matches:
  - {name: all, pathRegex: /, methods: ['*']}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: web, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: web, namespace: shop}
  sources:
  - {kind: ServiceAccount, name: buyer, namespace: shop}
  - {kind: ServiceAccount, name: thief, namespace: shop}
  rules:
  - {kind: HTTPRouteGroup, name: routes}
";

    fn id(ns: &str, sa: &str) -> crate::SpiffeId {
        ServiceAccount::new(ns, sa).spiffe_id("cluster.local")
    }

    fn snapshot(permissive: bool) -> Snapshot {
        let loaded = load_str("p.yaml", POLICY, Format::Yaml);
        assert!(loaded.is_valid());
        Snapshot::compile(loaded.policy, Options::default().permissive(permissive))
    }

    fn decide(snapshot: &Snapshot, source: &crate::SpiffeId) -> Result<(), Denied> {
        let headers = HeaderMap::new();
        let request = Request::http(Some(80), HttpRequest::new("GET", "/", &headers));
        snapshot
            .authorize(&id("shop", "web"), Some(source), &request)
            .map(|_| ())
    }

    #[test]
    fn a_revoked_source_is_denied_before_any_target_is_considered() {
        let thief = id("shop", "thief");
        let snapshot = snapshot(false).with_revoked([&thief]);
        assert_eq!(decide(&snapshot, &thief), Err(Denied::Revoked));
        assert_eq!(Denied::Revoked.code(), "revoked");
        assert!(!snapshot.admits_any(&id("shop", "web"), &thief));
        // The others are decided by the policy as before.
        assert_eq!(decide(&snapshot, &id("shop", "buyer")), Ok(()));
        assert!(snapshot.admits_any(&id("shop", "web"), &id("shop", "buyer")));
        assert_eq!(
            decide(&snapshot, &id("shop", "stranger")),
            Err(Denied::SourceNotAllowed)
        );
        // The explanation names no target: none was considered.
        let headers = HeaderMap::new();
        let request = Request::http(Some(80), HttpRequest::new("GET", "/", &headers));
        let explained = snapshot.explain(&id("shop", "web"), Some(&thief), &request);
        assert_eq!(explained.decision.map(|_| ()), Err(Denied::Revoked));
        assert!(explained.misses.is_empty());
    }

    #[test]
    fn permissive_mode_still_refuses_a_revoked_source() {
        let thief = id("shop", "thief");
        let snapshot = snapshot(true).with_revoked([&thief]);
        assert_eq!(decide(&snapshot, &thief), Err(Denied::Revoked));
        assert!(!snapshot.admits_any(&id("shop", "web"), &thief));
        assert_eq!(decide(&snapshot, &id("shop", "anyone")), Ok(()));
    }

    #[test]
    fn only_identities_of_this_trust_domain_are_kept_and_matched() {
        let foreign = ServiceAccount::new("shop", "thief").spiffe_id("other.domain");
        let snapshot = snapshot(false).with_revoked([&foreign]);
        assert_eq!(snapshot.revoked_count(), 0);
        assert!(!snapshot.is_revoked(&id("shop", "thief")));
        let snapshot = snapshot.with_revoked([&id("shop", "thief")]);
        assert!(snapshot.is_revoked(&id("shop", "thief")));
        assert!(!snapshot.is_revoked(&foreign));
        // Namespace and name are matched as a pair.
        assert!(!snapshot.is_revoked(&id("shopt", "hief")));
    }
}
