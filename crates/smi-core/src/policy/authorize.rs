//! `authorize`: may this source call this destination with this request?

use std::fmt;
use std::sync::{Arc, LazyLock};

use super::Snapshot;
use super::compile::{CompiledTarget, L4Rule};
use super::explain::Miss;
use super::keys::{NameRef, PairRef};
use super::request::{Protocol, Request};
use crate::identity::SpiffeId;
use crate::model::{Meta, Rule};

/// Why a request was allowed: the TrafficTarget, rule and match that decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permit<'a> {
    /// Permissive mode: every request is allowed.
    Permissive,
    Granted {
        target: &'a Meta,
        /// Index into the target's rules (`spec.rules[i]`, v1alpha1 `specs[i]`).
        rule_index: usize,
        rule: &'a Rule,
        /// The HTTPRouteGroup match that matched; `None` for L4 rules.
        matched: Option<&'a str>,
        /// This permit's `Display`, made when the policy was compiled (shared, for labels).
        label: &'a Arc<str>,
    },
}

impl Permit<'_> {
    /// What this permit says (its `Display`), shared: made once when the policy compiled.
    pub fn label(&self) -> Arc<str> {
        static PERMISSIVE_LABEL: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(PERMISSIVE));
        match self {
            Permit::Permissive => Arc::clone(&PERMISSIVE_LABEL),
            Permit::Granted { label, .. } => Arc::clone(label),
        }
    }
}

const PERMISSIVE: &str = "permissive mode allows every request";

/// The text of a granted permit: which TrafficTarget, rule and match allowed the request.
pub(crate) fn granted_text(
    target: &Meta,
    rule_index: usize,
    rule: &Rule,
    matched: Option<&str>,
) -> String {
    let mut text = format!(
        "TrafficTarget {}/{} rule {} ({} {})",
        target.namespace, target.name, rule_index, rule.kind, rule.name
    );
    if let Some(m) = matched {
        text.push_str(" match ");
        text.push_str(m);
    }
    text
}

impl fmt::Display for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Permit::Permissive => f.write_str(PERMISSIVE),
            Permit::Granted { label, .. } => f.write_str(label),
        }
    }
}

/// Why a request was denied. Deny is the default: each variant says what was missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// The caller presented no identity.
    Unauthenticated,
    /// The caller's identity is revoked (the control's deny list): refused whatever the policy
    /// says, permissive mode included.
    Revoked,
    /// The caller's or the destination's identity is from another trust domain.
    ForeignTrustDomain,
    /// No TrafficTarget has this destination.
    NoTargetsForDestination,
    /// TrafficTargets exist for this destination, but none lists this source.
    SourceNotAllowed,
    /// Targets list this source, but none of their rules matches the request.
    NoRuleMatched { targets: usize },
}

impl Denied {
    /// A stable machine-readable code (for JSON output and metrics labels).
    pub fn code(&self) -> &'static str {
        match self {
            Denied::Unauthenticated => "unauthenticated",
            Denied::Revoked => "revoked",
            Denied::ForeignTrustDomain => "foreign_trust_domain",
            Denied::NoTargetsForDestination => "no_targets_for_destination",
            Denied::SourceNotAllowed => "source_not_allowed",
            Denied::NoRuleMatched { .. } => "no_rule_matched",
        }
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::Unauthenticated => f.write_str("the caller presented no identity"),
            Denied::Revoked => f.write_str("the caller's identity is revoked"),
            Denied::ForeignTrustDomain => {
                f.write_str("an identity is not in this mesh's trust domain")
            }
            Denied::NoTargetsForDestination => f.write_str("no TrafficTarget has this destination"),
            Denied::SourceNotAllowed => {
                f.write_str("no TrafficTarget for this destination lists this source")
            }
            Denied::NoRuleMatched { targets } => write!(
                f,
                "{targets} TrafficTarget(s) list this source, but no rule matches the request"
            ),
        }
    }
}

impl std::error::Error for Denied {}

impl Snapshot {
    /// Decides one request. Deny a revoked source; otherwise deny unless a TrafficTarget for
    /// `destination` lists `source` and one of that same target's rules matches. No
    /// allocation, no lock; cost grows with the number of targets that pair this source with
    /// this destination, not with the mesh.
    pub fn authorize(
        &self,
        destination: &SpiffeId,
        source: Option<&SpiffeId>,
        request: &Request<'_>,
    ) -> Result<Permit<'_>, Denied> {
        if source.is_some_and(|s| self.is_revoked(s)) {
            return Err(Denied::Revoked);
        }
        if self.options.permissive {
            return Ok(Permit::Permissive);
        }
        let candidates = self.candidates(destination, source)?;
        candidates
            .iter()
            .find_map(|&i| self.evaluate(&self.targets[i as usize], request).ok())
            .ok_or(Denied::NoRuleMatched {
                targets: candidates.len(),
            })
    }

    /// Whether any TrafficTarget lets `source` reach `destination` at all (or the mesh is
    /// permissive), and `source` is not revoked. When this turns false, every connection from
    /// `source` can be closed.
    pub fn admits_any(&self, destination: &SpiffeId, source: &SpiffeId) -> bool {
        !self.is_revoked(source)
            && (self.options.permissive || self.candidates(destination, Some(source)).is_ok())
    }

    /// The targets that pair `source` with `destination`, or why there are none.
    pub(crate) fn candidates(
        &self,
        destination: &SpiffeId,
        source: Option<&SpiffeId>,
    ) -> Result<&[u32], Denied> {
        let source = source.ok_or(Denied::Unauthenticated)?;
        let td = self.options.trust_domain.as_str();
        if source.trust_domain != td || destination.trust_domain != td {
            return Err(Denied::ForeignTrustDomain);
        }
        let dest = NameRef {
            namespace: destination.namespace(),
            name: destination.service_account(),
        };
        let pair = PairRef {
            destination: dest,
            source: NameRef {
                namespace: source.namespace(),
                name: source.service_account(),
            },
        };
        match self.pairs.get(&pair) {
            Some(list) => Ok(list),
            None if self.destinations.contains(&dest) => Err(Denied::SourceNotAllowed),
            None => Err(Denied::NoTargetsForDestination),
        }
    }

    /// Whether one target admits the request, or why not.
    pub(crate) fn evaluate<'a>(
        &'a self,
        target: &'a CompiledTarget,
        request: &Request<'_>,
    ) -> Result<Permit<'a>, Miss> {
        let granted =
            |rule_index: usize, matched: Option<&'a str>, label: &'a Arc<str>| Permit::Granted {
                target: &target.meta,
                rule_index,
                rule: &target.rules[rule_index],
                matched,
                label,
            };
        if let (Some(allowed), Some(port)) = (target.destination_port, request.port)
            && allowed != port
        {
            return Err(Miss::DestinationPort { allowed });
        }
        let l4 = |rules: &'a [L4Rule]| {
            rules
                .iter()
                .find(|r| r.ports.allows(request.port))
                .map(|r| granted(r.index, None, &r.label))
                .ok_or(if rules.is_empty() {
                    Miss::NoRuleForProtocol
                } else {
                    Miss::PortNotInL4Rules
                })
        };
        match &request.protocol {
            // A target with only L4 rules admits HTTP on its TCP ports.
            Protocol::Http(_) if target.http.is_empty() => l4(&target.tcp),
            Protocol::Http(http) => {
                // With HTTP rules present, TCPRoute rules only restrict the port.
                if !target.tcp.is_empty()
                    && !target.tcp.iter().any(|r| r.ports.allows(request.port))
                {
                    return Err(Miss::PortNotInL4Rules);
                }
                target
                    .http
                    .iter()
                    .find_map(|rule| {
                        let group = rule.group.as_ref()?;
                        let (i, m) = group.first_match(rule.selected.as_deref(), http)?;
                        Some(granted(rule.index, Some(&m.name), &rule.labels[i]))
                    })
                    .ok_or(Miss::NoHttpRuleMatched)
            }
            Protocol::Tcp => l4(&target.tcp),
            Protocol::Udp => l4(&target.udp),
        }
    }
}
