//! smi-mesh examples: the bookstore demo ([`bookstore`], `src/bin/bookstore.rs`), tonic over
//! the mesh (`src/bin/greeter.rs`), axum with a hyper client (`src/bin/axum-hyper.rs`), and
//! [`local`], the in-process control service the small examples use.
#![forbid(unsafe_code)]

pub mod bookstore;

/// The README's Rust code, compiled by `cargo test --doc` (part of `scripts/test`), so that what
/// a newcomer copies from it builds.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
pub mod greeting;
pub mod local;

/// The greeter example's generated protobuf types and tonic stubs.
#[allow(
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
pub mod greeter {
    tonic::include_proto!("greeter.v1");
}
