//! Distributed tracing with W3C Trace Context: the mesh carries `traceparent` / `tracestate`
//! from the requests a workload serves to the requests it makes while serving them, and
//! records one span per request on each side, labelled with the edge the metrics record.
//!
//! - Inbound (`smi-server`'s `AuthorizeLayer`): a request's `traceparent` (a malformed one
//!   starts a new trace; it never fails the request) becomes the parent of a server span, and
//!   the application's service runs with that span's [`TraceContext`] in [`CURRENT`]. The
//!   application also sees the rewritten `traceparent`, so its own instrumentation, or headers
//!   it forwards by hand, continue under the server span.
//! - Outbound ([`MeshClient`](crate::MeshClient)): each request continues its own
//!   `traceparent` if the application set one, else the [`CURRENT`] context, with a client
//!   span whose id is the `parent-id` the server receives; the sampled flag and `tracestate`
//!   are carried over.
//! - Spans go to the [`SpanSink`] of the handles' [`TraceHandle`]: an OTLP/gRPC exporter
//!   (`trace::otlp`, feature `otlp`), a `SpanRecorder` in tests (feature `test-util`), or none.
//!   With none (the default) no span is made and no id generated: a `traceparent` that came in
//!   is passed on as it is, and a request without one gets no header and costs one header
//!   lookup and one task-local read, no allocation.
//! - Sampling follows the caller: a context whose sampled flag is off is passed on and not
//!   recorded; a trace this workload starts (no `traceparent` came in) is sampled.
//!
//! Spans end at the response head, as the metrics measure; a `grpc-status` in the trailers of
//! a streaming answer is not seen (trailers-only answers, what a failing gRPC call usually
//! gets, are).

mod client;
mod context;
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "test-util")]
mod recorder;
mod sink;
mod span;

pub(crate) use client::ClientTrace;
pub use context::{CURRENT, TraceContext, current};
#[cfg(feature = "test-util")]
pub use recorder::SpanRecorder;
pub use sink::{SpanSink, TraceHandle};
pub use smi_core::telemetry::trace_context::{SpanId, TraceFlags, TraceId, TraceParent};
pub use span::{ActiveSpan, FinishedSpan, SpanFuture};
