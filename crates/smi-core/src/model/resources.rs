//! The SMI resources, normalized across apiVersions.

use std::fmt;
use std::sync::Arc;

use super::MethodSet;
use crate::identity::ServiceAccount;

/// Where a resource was read from: a source name (usually a file path) and the 1-based index of
/// the document within it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    pub source: Arc<str>,
    pub document: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:doc {}", self.source, self.document)
    }
}

/// Identity and provenance shared by every resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub namespace: String,
    pub name: String,
    /// The apiVersion the resource was written in (`split.smi-spec.io/v1alpha1`), for messages.
    pub api_version: String,
    pub origin: Origin,
}

/// The kind of route a TrafficTarget rule (or split match) refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteKind {
    Http,
    Tcp,
    Udp,
}

impl RouteKind {
    pub fn kind_name(self) -> &'static str {
        match self {
            RouteKind::Http => "HTTPRouteGroup",
            RouteKind::Tcp => "TCPRoute",
            RouteKind::Udp => "UDPRoute",
        }
    }
}

impl fmt::Display for RouteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind_name())
    }
}

/// `access.smi-spec.io` TrafficTarget (v1alpha1-v1alpha3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrafficTarget {
    pub meta: Meta,
    pub destination: ServiceAccount,
    /// v1alpha1/v1alpha2 `destination.port`: an extra restriction, kept rather than dropped.
    pub destination_port: Option<u16>,
    pub sources: Vec<ServiceAccount>,
    pub rules: Vec<Rule>,
}

/// One `rules[]` (v1alpha1: `specs[]`) entry of a TrafficTarget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub kind: RouteKind,
    pub name: String,
    /// HTTPRouteGroup match names; `None` (omitted) means every match of the group.
    pub matches: Option<Vec<String>>,
}

/// `specs.smi-spec.io` HTTPRouteGroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRouteGroup {
    pub meta: Meta,
    pub matches: Vec<HttpMatch>,
}

/// One named match. Its conditions are ANDed; absent ones match everything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpMatch {
    pub name: String,
    /// Validated regex source; `None` when absent (any path).
    pub path_regex: Option<String>,
    pub methods: MethodSet,
    /// Lower-cased header name and validated value regex (full match), ANDed.
    pub headers: Vec<(String, String)>,
}

/// TCP or UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum L4Protocol {
    Tcp,
    Udp,
}

impl L4Protocol {
    pub fn route_kind(self) -> RouteKind {
        match self {
            L4Protocol::Tcp => RouteKind::Tcp,
            L4Protocol::Udp => RouteKind::Udp,
        }
    }
}

/// `specs.smi-spec.io` TCPRoute or UDPRoute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L4Route {
    pub meta: Meta,
    pub protocol: L4Protocol,
    /// Destination ports; empty means every port (as in v1alpha4 `ports: []` and older versions).
    pub ports: Vec<u16>,
}

/// `split.smi-spec.io` TrafficSplit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrafficSplit {
    pub meta: Meta,
    /// The root (apex) service, in the split's namespace.
    pub service: String,
    pub backends: Vec<Backend>,
    /// v1alpha3+: HTTPRouteGroup names in the split's namespace; empty means every request.
    pub matches: Vec<String>,
}

/// A split backend. Weights are relative; v1alpha1 Quantities are kept in milli-units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    pub service: String,
    pub weight: u64,
}

/// Every resource a load produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicySet {
    pub targets: Vec<TrafficTarget>,
    pub route_groups: Vec<HttpRouteGroup>,
    pub l4_routes: Vec<L4Route>,
    pub splits: Vec<TrafficSplit>,
}

impl PolicySet {
    pub fn len(&self) -> usize {
        self.targets.len() + self.route_groups.len() + self.l4_routes.len() + self.splits.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
