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

/// How a `PolicyUpdate.version` orders states across control replicas that share a store:
/// its bits above this shift are the store's revision (the same on every replica for the same
/// stored state), the bits below count the publishes a control made at that revision (which
/// replicas may number differently). A workload applies a view whose revision is newer, or
/// whose revision is the same and whose version differs (the newest received wins); it keeps
/// what it holds against an older revision (a replica that is behind). A single control's
/// versions only go up, so the rule orders them too.
pub const VERSION_REVISION_SHIFT: u32 = 16;

/// Whether a workload holding version `held` applies a view of version `offered`
/// ([`VERSION_REVISION_SHIFT`] says why).
pub fn is_newer_view(offered: u64, held: u64) -> bool {
    offered != held && offered >> VERSION_REVISION_SHIFT >= held >> VERSION_REVISION_SHIFT
}

pub use convert::WireError;
