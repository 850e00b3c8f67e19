//! smi-control: the control service of smi-mesh and the `smictl` command line.
//!
//! - [`source`]: policy sources (files and directories now) into a [`smi_core::Loaded`].
//! - [`ca`]: the certificate authority and its state directory.
//! - [`cli`]: the `smictl` commands.
#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod ca;
pub mod chunk;
pub mod cli;
pub mod distribute;
pub mod enroll;
pub mod quota;
pub mod registry;
pub mod revocation;
pub mod serve;
pub mod source;
pub mod status;
