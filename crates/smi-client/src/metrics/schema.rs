//! The one label schema of request metrics, for both directions: a request is an *edge* between
//! this workload and a peer, for a service, let through by a route, answered with a status.
//! The series key is (direction, peer identity, peer workload, peer pod, service, backend,
//! route, protocol, HTTP status, gRPC status); reports to the control carry the same edges
//! without the statuses (`smi_core::proto::v1::EdgeStats`).

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use smi_core::SpiffeId;
use smi_core::telemetry::Workload;

pub use super::value::StringValue;
pub use smi_core::telemetry::Direction;

/// HTTP or gRPC (a request whose `content-type` is `application/grpc...`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    #[default]
    Http,
    Grpc,
}

impl Protocol {
    /// Istio's `request_protocol` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
        }
    }

    /// From a request's headers.
    pub fn of(headers: &http::HeaderMap) -> Self {
        let grpc = headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        if grpc { Protocol::Grpc } else { Protocol::Http }
    }
}

/// The names of the workload on the other end of a connection, read once per connection from
/// its certificate (`smi_tls::PeerIdentity`): every request of the connection shares them.
#[derive(Debug)]
pub struct PeerNames {
    identity: Box<str>,
    namespace: Box<str>,
    /// Empty when the certificate names no workload.
    workload: Box<str>,
    pod: Box<str>,
    /// Of the contents, made once: a series lookup hashes this instead of the text.
    hash: u64,
}

impl PeerNames {
    /// The names `identity`'s certificate carries (`workload`: `None` when it carries none).
    pub fn new(identity: &SpiffeId, workload: Option<&Workload>) -> Self {
        Self::from_parts(
            &identity.to_string(),
            identity.namespace(),
            workload.map_or("", |w| &w.name),
            workload.map_or("", |w| &w.pod),
        )
    }

    /// From text (a peer known only by name, e.g. in a test or a benchmark).
    pub fn from_parts(identity: &str, namespace: &str, workload: &str, pod: &str) -> Self {
        // SipHash with fixed keys: the same contents hash the same in every map and thread.
        let mut hasher = std::hash::DefaultHasher::new();
        (identity, namespace, workload, pod).hash(&mut hasher);
        Self {
            identity: identity.into(),
            namespace: namespace.into(),
            workload: workload.into(),
            pod: pod.into(),
            hash: hasher.finish(),
        }
    }

    /// The SPIFFE ID.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The SPIFFE ID's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The workload (Deployment) name; empty when unknown.
    pub fn workload(&self) -> &str {
        &self.workload
    }

    /// The pod name; empty when unknown.
    pub fn pod(&self) -> &str {
        &self.pod
    }

    /// The hash of the contents, made once.
    pub(crate) fn content_hash(&self) -> u64 {
        self.hash
    }
}

impl PartialEq for PeerNames {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
            && self.identity == other.identity
            && self.namespace == other.namespace
            && self.workload == other.workload
            && self.pod == other.pod
    }
}

impl Eq for PeerNames {}

impl Hash for PeerNames {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// What a request's edge is labelled with. Low-cardinality by construction: names from
/// certificates and the policy, never paths or addresses. Every field is shared or static
/// (`StringValue`, `Arc`): building labels per request copies no text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EdgeLabels {
    /// Inbound: the caller. Outbound: the endpoint called (from its server certificate).
    /// `None`: no certificate (inbound), or no endpoint was reached (outbound).
    pub peer: Option<Arc<PeerNames>>,
    /// Inbound: the service of ours the request's authority named, `namespace/name`, or
    /// `unknown`. Outbound: the service the request named (the apex of a TrafficSplit), or
    /// `unknown` when it named none.
    pub service: StringValue,
    /// Outbound: the TrafficSplit backend (`namespace/name`) when a split chose it; else empty.
    pub backend: StringValue,
    /// Inbound: the TrafficTarget rule and match that allowed it, or `denied` / `invalid`.
    /// Outbound: `sent` or `error`.
    pub route: StringValue,
    pub protocol: Protocol,
    /// The mesh refused the request (authorization, an invalid request, revocation): counted
    /// as `Outcome::Denied`, whatever its status.
    pub denied: bool,
}

/// A response or error together with the labels of its edge: what the inner services of a
/// mesh stack return to [`crate::metrics::Record`], which records the edge and hands on the value.
#[derive(Debug)]
pub struct Labelled<T> {
    pub value: T,
    pub labels: EdgeLabels,
}

/// One finished request.
#[derive(Debug)]
pub struct Observation {
    pub direction: Direction,
    pub labels: EdgeLabels,
    /// The HTTP status of the response head; 0 when there was none.
    pub status: u16,
    /// The `grpc-status` of the response head, when it had one (a trailers-only response).
    pub grpc_status: Option<u32>,
    /// Time to the response head.
    pub duration: Duration,
}
