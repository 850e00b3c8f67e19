//! Tracing through two meshed servers on loopback (real mTLS, certificates from `TestCa`, no
//! control service): a request with a `traceparent` reaches `bookstore`, whose handler calls
//! `warehouse` through a `MeshClient` while serving it. The warehouse sees the same trace, with
//! the bookstore's client span as its parent; each side records one span per request; and an
//! OTLP receiver built from opentelemetry-proto's `TraceServiceServer` gets them all.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod otlp;
mod propagation;
mod world;
