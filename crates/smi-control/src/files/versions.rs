//! `versions.json` (0600): the high-water mark of the version numbers handed out,
//! `{"reserved_below": 4097}`. Every number below it may have been used; a reservation moves it
//! up by a block in one atomic write, so a restarted control numbers above everything its
//! previous run published, at the cost of one write per block.
//!
//! One control process per state directory, as for the rest of it: the mark is read and
//! written under an in-process lock. A store shared by several controls (etcd) reserves
//! nothing: its versions come from its revision ([`StateStore::shared_version`]).
//!
//! [`StateStore::shared_version`]: crate::traits::StateStore::shared_version

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::state_files::{invalid, read_secret, write_atomic};
use crate::traits::StoreError;

/// The file's name in the state directory.
pub const FILE: &str = "versions.json";

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Mark {
    reserved_below: u64,
}

#[derive(Debug)]
pub(super) struct VersionFile {
    path: PathBuf,
    lock: Mutex<()>,
}

impl VersionFile {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join(FILE),
            lock: Mutex::new(()),
        }
    }

    /// `count` numbers above the mark (from 1 in a new directory); the mark is on disk, moved
    /// past them, before they are returned.
    pub fn reserve(&self, count: u64) -> Result<Range<u64>, StoreError> {
        let _reserving = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let start = self.read()?.max(1);
        let end = start
            .checked_add(count)
            .ok_or_else(|| invalid(&self.path, "version numbers exhausted".into()))?;
        let json = serde_json::to_vec(&Mark {
            reserved_below: end,
        })
        .map_err(|e| invalid(&self.path, e.to_string()))?;
        write_atomic(&self.path, &json, 0o600)?;
        Ok(start..end)
    }

    /// The mark on disk: 0 when there is none yet. One that cannot be read is an error naming
    /// the file (guessing a mark could reuse numbers).
    fn read(&self) -> Result<u64, StoreError> {
        let Some(text) = read_secret(&self.path)? else {
            return Ok(0);
        };
        let mark: Mark = serde_json::from_str(&text).map_err(|e| {
            invalid(
                &self.path,
                format!("{e}; restore it, or remove it (versions then start again from 1, and workloads that kept a view may take a new state for the one they hold)"),
            )
        })?;
        Ok(mark.reserved_below)
    }

    /// Whether `relative` (a path in the state directory) is this file or one of its
    /// temporaries: the store's own writes, no reason to reload.
    pub fn is_ours(relative: &Path) -> bool {
        let Some(name) = relative.to_str() else {
            return false;
        };
        name == FILE || (name.starts_with(&format!(".{FILE}.")) && name.ends_with(".tmp"))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn reservations_continue_above_the_mark_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let first = VersionFile::new(dir.path());
        assert_eq!(first.reserve(10).unwrap(), 1..11);
        assert_eq!(first.reserve(10).unwrap(), 11..21);
        let restarted = VersionFile::new(dir.path());
        assert_eq!(restarted.reserve(5).unwrap(), 21..26);
        let mode = std::fs::metadata(dir.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_corrupt_mark_is_an_error_naming_the_file_and_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        std::fs::write(&path, "{\"reserved\": 7}").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let error = VersionFile::new(dir.path())
            .reserve(1)
            .unwrap_err()
            .to_string();
        assert!(error.starts_with(&path.display().to_string()), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"reserved\": 7}");
    }

    #[test]
    fn only_the_file_and_its_temporaries_are_ours() {
        assert!(VersionFile::is_ours(Path::new("versions.json")));
        assert!(VersionFile::is_ours(Path::new(".versions.json.0a1b.tmp")));
        assert!(!VersionFile::is_ours(Path::new("revoked.json")));
        assert!(!VersionFile::is_ours(Path::new(".revoked.json.0a1b.tmp")));
    }
}
