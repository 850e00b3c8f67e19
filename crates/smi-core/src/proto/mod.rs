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

/// The largest message either side of the control API decodes or encodes: views larger than
/// this go in chunks (`PolicyUpdate.continued`), never as one message.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

pub use convert::WireError;
