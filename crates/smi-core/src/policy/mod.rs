//! The compiled policy: an immutable [`Snapshot`] built once from a [`PolicySet`], shared behind
//! an `Arc`, and asked two questions per request: [`Snapshot::authorize`] (may this source call
//! this destination this way?) and [`Snapshot::route`] (where does a request to this service go?).
//!
//! [`PolicySet`]: crate::model::PolicySet

mod authorize;
mod compile;
mod explain;
mod keys;
pub mod lint;
mod matcher;
mod normalize;
mod pattern;
mod request;
mod revoked;
mod route;
mod service;

pub use authorize::{Denied, Permit};
pub use explain::{Explanation, Miss};
pub use matcher::joined_value;
pub use normalize::{PathError, normalize_path};
pub use request::{HttpRequest, Protocol, Request};
pub use route::{CompiledSplit, Route};
pub use service::{HostError, ServiceName};

use std::fmt;
use std::sync::Arc;

use crate::identity::DEFAULT_TRUST_DOMAIN;
use crate::load::Diagnostic;
use crate::model::PolicySet;

/// How `pathRegex` is anchored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PathMatch {
    /// `^(?:re)`: what the SMI spec says (so `/api` matches `/api/v1`).
    #[default]
    Prefix,
    /// `^(?:re)$`: what OSM and Envoy do.
    Full,
}

/// Compilation settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Identities from other trust domains are denied. Default: `cluster.local`.
    pub trust_domain: String,
    /// DNS suffix of service names (`svc.ns.svc.<cluster_domain>`). Default: `cluster.local`,
    /// as in Kubernetes.
    pub cluster_domain: String,
    pub path_match: PathMatch,
    /// Allow every request, as OSM's permissive mode does. Default: off (deny unless allowed).
    pub permissive: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            trust_domain: DEFAULT_TRUST_DOMAIN.to_owned(),
            cluster_domain: "cluster.local".to_owned(),
            path_match: PathMatch::Prefix,
            permissive: false,
        }
    }
}

impl Options {
    #[must_use]
    pub fn permissive(mut self, permissive: bool) -> Self {
        self.permissive = permissive;
        self
    }

    #[must_use]
    pub fn path_match(mut self, path_match: PathMatch) -> Self {
        self.path_match = path_match;
        self
    }

    #[must_use]
    pub fn trust_domain(mut self, trust_domain: impl Into<String>) -> Self {
        self.trust_domain = trust_domain.into();
        self
    }
}

/// An immutable, compiled policy. Build it with [`Snapshot::compile`]; share it as `Arc<Snapshot>`.
pub struct Snapshot {
    options: Options,
    policy: Arc<PolicySet>,
    targets: Box<[compile::CompiledTarget]>,
    /// Destination accounts that some TrafficTarget names (to tell "no targets" from "not listed").
    destinations: keys::NameSet,
    /// (destination, source) -> the targets that pair them, in policy order.
    pairs: keys::PairMap<Box<[u32]>>,
    splits: keys::ServiceMap<CompiledSplit>,
    /// Accounts of this trust domain whose identity is revoked ([`Snapshot::with_revoked`]).
    revoked: keys::NameSet,
    /// Every header name some HTTPRouteGroup match tests, `host` excluded (it is the authority).
    matched_headers: Box<[http::HeaderName]>,
    warnings: Vec<Diagnostic>,
}

impl Snapshot {
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The resources this snapshot was compiled from.
    pub fn policy(&self) -> &Arc<PolicySet> {
        &self.policy
    }

    /// The header names that some rule matches on (`host` excluded: it is matched on the
    /// request's authority). The data plane makes each of them unambiguous before deciding.
    pub fn matched_headers(&self) -> &[http::HeaderName] {
        &self.matched_headers
    }

    /// Cross-resource warnings found while compiling (dangling references, ignored splits, ...).
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("options", &self.options)
            .field("targets", &self.targets.len())
            .field("splits", &self.splits.len())
            .field("revoked", &self.revoked.len())
            .field("warnings", &self.warnings.len())
            .finish()
    }
}
