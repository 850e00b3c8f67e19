//! [`PolicyDir`]: the policy directory as a [`PolicySource`]. Every policy file under it is one
//! origin (its path); the directory is watched with a debounced `notify` watcher.

use std::path::{Path, PathBuf};

use super::policy_files::{policy_files, read_document};
use super::watch::watch_dir;
use crate::traits::{Changed, PolicyDocument, PolicySource, SourceError, WatchGuard};

#[derive(Clone, Debug)]
pub struct PolicyDir {
    dir: PathBuf,
    /// The path as logs and the status API show it.
    name: String,
}

impl PolicyDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Self {
            name: dir.display().to_string(),
            dir,
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl PolicySource for PolicyDir {
    fn name(&self) -> &str {
        &self.name
    }

    /// The policy files in name order, each read whole (within the size limit) or unreadable.
    fn documents(&self) -> Result<Vec<PolicyDocument>, SourceError> {
        let files =
            policy_files(&self.dir).map_err(|e| SourceError(format!("cannot read: {e}")))?;
        Ok(files.iter().map(|file| read_document(file)).collect())
    }

    /// Calls `changed` 75 ms after the last event of a burst, on a blocking thread.
    fn watch(&self, changed: Changed) -> Result<WatchGuard, SourceError> {
        watch_dir(&self.dir, move || changed())
            .map(WatchGuard::new)
            .map_err(|e| SourceError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use smi_core::Format;
    use tokio::sync::mpsc;

    use super::*;
    use crate::traits::Content;

    #[test]
    fn every_policy_file_is_a_document_named_by_its_path_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.yaml"), "kind: B\n").unwrap();
        std::fs::write(dir.path().join("a.json"), "{}").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not policy").unwrap();
        std::fs::write(dir.path().join(".swap.yaml"), "hidden").unwrap();
        let source: Arc<dyn PolicySource> = Arc::new(PolicyDir::new(dir.path()));
        let documents = source.documents().unwrap();
        let path = |name: &str| dir.path().join(name).display().to_string();
        assert_eq!(
            documents,
            [
                PolicyDocument {
                    origin: path("a.json"),
                    content: Content::Text {
                        bytes: b"{}".to_vec(),
                        format: Format::Json
                    },
                },
                PolicyDocument {
                    origin: path("b.yaml"),
                    content: Content::Text {
                        bytes: b"kind: B\n".to_vec(),
                        format: Format::Yaml
                    },
                },
            ]
        );
        assert_eq!(source.name(), dir.path().display().to_string());
    }

    #[test]
    fn a_missing_directory_is_an_error_of_the_whole_source() {
        let dir = tempfile::tempdir().unwrap();
        let gone = PolicyDir::new(dir.path().join("gone"));
        let error = gone.documents().unwrap_err();
        assert!(error.to_string().starts_with("cannot read: "), "{error}");
    }

    #[tokio::test]
    async fn a_change_in_the_directory_is_signalled_once_it_is_quiet() {
        let dir = tempfile::tempdir().unwrap();
        let source = PolicyDir::new(dir.path());
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _watching = source
            .watch(Arc::new(move || {
                let _ = tx.send(());
            }))
            .unwrap();
        std::fs::write(dir.path().join("a.yaml"), "kind: A\n").unwrap();
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
    }
}
