//! The one label schema of request metrics, for both directions: a request is an *edge* from a
//! source to a destination, let through by a route, answered with a status. This is the shape
//! the telemetry issue's reports to the control will carry (then as a smi-core type, which the
//! control can read without linking the workload crates).

use std::time::Duration;

pub use opentelemetry::StringValue;

/// Which side of the edge recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// We are the destination (`smi-server`'s layers).
    Inbound,
    /// We are the source (the outbound client).
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// Who called whom, and what let it through. Low-cardinality by construction: identities,
/// services and rule names from the policy, never paths or addresses. Pass owned or shared
/// (`Arc<str>`) strings, or `&'static str`: they move into the metric attributes uncopied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeLabels {
    /// The caller's SPIFFE ID (`unauthenticated` inbound without a peer certificate).
    pub source: StringValue,
    /// Inbound: our SPIFFE ID. Outbound: the backend service called, `namespace/name`
    /// (`unknown` when the request named no service).
    pub destination: StringValue,
    /// Inbound: the TrafficTarget rule and match that allowed it, or `denied` / `invalid`.
    /// Outbound: `sent` or `error`.
    pub route: StringValue,
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
    /// Time to the response head.
    pub duration: Duration,
}
