//! smi-control: the control service of smi-mesh and the `smictl` command line.
//!
//! - [`source`]: policy sources (files and directories now) into a [`smi_core::Loaded`].
//! - [`cli`]: the `smictl` commands (`validate`, `check`, `route`).
#![forbid(unsafe_code)]

pub mod cli;
pub mod source;
