//! Today's parts, on files: the policy directory ([`PolicyDir`], a
//! [`PolicySource`](crate::traits::PolicySource)) and the state directory ([`StateDir`], a
//! [`StateStore`](crate::traits::StateStore)), with what they share: reading policy files, the
//! debounced directory watch, and the strict way state files are read and written.

mod ledger;
mod policy_dir;
mod policy_files;
mod state_dir;
pub(crate) mod state_files;
mod versions;
mod watch;

pub use ledger::DIR as USES_DIR;
pub use policy_dir::PolicyDir;
pub use policy_files::{load_paths, policy_files};
pub use state_dir::StateDir;
pub use versions::FILE as VERSIONS_FILE;
pub use watch::{DEBOUNCE, watch_dir, watch_dir_except};
