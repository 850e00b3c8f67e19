//! Traffic telemetry's shared vocabulary: which side recorded a request, how its answer is
//! classified, the names of the workload that recorded it, and the mergeable latency sketch that
//! workloads report and the control merges. Both ends of a report use these, so that a
//! workload's counts and the control's TrafficMetrics cannot disagree on what a failure is or
//! what a latency bin means.

mod classify;
pub mod sketch;
pub mod trace_context;
mod workload;

pub use classify::{Outcome, classify};
pub use sketch::{LatencySketch, SketchError};
pub use workload::{Workload, WorkloadError};

/// Which side of an edge recorded a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// We are the destination (the server's layers).
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
