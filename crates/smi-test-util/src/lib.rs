//! Test fixtures for smi-mesh (dev-only; never a dependency of a shipped crate).
#![forbid(unsafe_code)]
