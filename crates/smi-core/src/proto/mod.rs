//! The control API on the wire (feature `proto`): generated protobuf messages and tonic stubs,
//! and the one place where they convert to and from the model.

#[allow(
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
pub mod v1 {
    tonic::include_proto!("smi.control.v1");
}

mod convert;

pub use convert::WireError;
