//! The policy pipeline, whatever the [`PolicySource`](crate::traits::PolicySource): its
//! documents loaded origin by origin ([`PerOrigin`]: each keeps its last good version), merged,
//! compiled for warnings, and published on the hub when the merged policy changed
//! ([`PolicyReloader`]).

mod document;
mod per_origin;
mod reload;

pub use document::{add_document, unreadable};
pub use per_origin::{Failing, Merged, PerOrigin};
pub use reload::PolicyReloader;
