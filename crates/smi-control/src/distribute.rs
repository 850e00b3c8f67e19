//! The old path of [`crate::hub`], kept for the fuzz targets.

pub use crate::hub::{EndpointTable, Hub, Published, Subscription};
