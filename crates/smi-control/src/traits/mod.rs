//! The parts a control service is built from, each behind a trait, so that the file-based parts
//! of today ([`crate::files`]) can be joined or replaced by Kubernetes and etcd ones without the
//! rest of the control changing:
//!
//! - [`PolicySource`]: SMI resources with their origin, and a signal when they change.
//! - [`EndpointSource`]: the endpoints of services; several sources merge, each in its own slot.
//! - [`StateStore`]: the CA, the token key, the deny list, the token-use ledger and the version
//!   numbers.
//! - [`Authenticator`]: who a credential proves the caller is; a chain in which each claims only
//!   the credentials it recognizes.
//!
//! [`ControlBuilder`](crate::serve::ControlBuilder) assembles them.

mod authenticator;
mod endpoint_source;
mod policy_source;
mod state_store;

pub use authenticator::{Authenticator, Authenticators, Credential};
pub use endpoint_source::EndpointSource;
pub use policy_source::{Content, PolicyDocument, PolicySource, SourceError};
pub use state_store::{Revision, StateStore, StoreError, StoreHealth, TokenUses};

use std::any::Any;
use std::sync::Arc;

/// What a source calls when it may have changed. It may block (the control reloads in it), so a
/// source calls it from a thread that may block, never from an async task's poll.
pub type Changed = Arc<dyn Fn() + Send + Sync>;

/// Keeps a source's watch alive (a file watcher, a watch stream's task); dropping it stops the
/// notifications.
pub struct WatchGuard {
    _watching: Box<dyn Any + Send + Sync>,
}

impl WatchGuard {
    pub fn new(watching: impl Any + Send + Sync) -> Self {
        Self {
            _watching: Box::new(watching),
        }
    }
}

impl std::fmt::Debug for WatchGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WatchGuard")
    }
}
