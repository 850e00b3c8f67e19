//! Policy sources. Files and directories now (etcd and Kubernetes are planned): each becomes a
//! [`smi_core::Loaded`], and [`PolicyReloader`] publishes what loads.

mod files;
mod per_file;
mod reload;

pub use files::{load_paths, policy_files};
pub use reload::{PolicyReloader, watch_dir, watch_dir_except};
