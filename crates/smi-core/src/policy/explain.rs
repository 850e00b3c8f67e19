//! `explain`: the decision plus, for a denial, why each candidate TrafficTarget did not match.
//! For `smictl check` and debugging; allocates, unlike `authorize`.

use std::fmt;

use super::Snapshot;
use super::authorize::{Denied, Permit};
use super::request::Request;
use crate::identity::SpiffeId;
use crate::model::Meta;

/// Why one TrafficTarget that lists the source did not admit the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Miss {
    /// v1alpha1/v1alpha2 `destination.port` names another port.
    DestinationPort { allowed: u16 },
    /// The target's TCPRoute/UDPRoute rules do not open this port (or name missing routes).
    PortNotInL4Rules,
    /// No HTTPRouteGroup rule matched the method, path and headers.
    NoHttpRuleMatched,
    /// The target has no rule for this protocol (e.g. UDP with only TCPRoute rules).
    NoRuleForProtocol,
}

impl fmt::Display for Miss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Miss::DestinationPort { allowed } => {
                write!(f, "destination.port allows only port {allowed}")
            }
            Miss::PortNotInL4Rules => {
                f.write_str("its TCPRoute/UDPRoute rules do not open this port")
            }
            Miss::NoHttpRuleMatched => {
                f.write_str("no HTTPRouteGroup match admits this method, path and headers")
            }
            Miss::NoRuleForProtocol => f.write_str("it has no rule for this protocol"),
        }
    }
}

/// A decision with the reasoning behind it.
#[derive(Debug)]
pub struct Explanation<'a> {
    pub decision: Result<Permit<'a>, Denied>,
    /// Each TrafficTarget that lists the source, and why it did not admit the request.
    pub misses: Vec<(&'a Meta, Miss)>,
}

impl Snapshot {
    pub fn explain(
        &self,
        destination: &SpiffeId,
        source: Option<&SpiffeId>,
        request: &Request<'_>,
    ) -> Explanation<'_> {
        let decision = self.authorize(destination, source, request);
        let mut misses = Vec::new();
        // A revoked source is refused before any target is considered.
        if decision.is_err_and(|d| d != Denied::Revoked) {
            for &i in self.candidates(destination, source).unwrap_or_default() {
                let target = &self.targets[i as usize];
                if let Err(miss) = self.evaluate(target, request) {
                    misses.push((&target.meta, miss));
                }
            }
        }
        Explanation { decision, misses }
    }
}
