//! A policy directory loaded file by file, the way `kubectl apply` applies manifests: each file is
//! loaded on its own, a file with errors keeps contributing its last good resources (or nothing,
//! if it never loaded), and every other file applies. The results are merged in one
//! [`Loader`], so that duplicates across files are replaced as a single load would replace them.
//!
//! Each file's bytes are kept with its result, so an unchanged file is read but not parsed again.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use smi_core::load::{Diagnostic, Loaded, Loader};

use super::files::{add_bytes, read};
use super::policy_files;

/// The last load of every policy file of a directory.
#[derive(Debug, Default)]
pub struct PerFile {
    files: HashMap<PathBuf, FileLoad>,
}

#[derive(Debug)]
struct FileLoad {
    /// The bytes last read; `None` if the file could not be read.
    bytes: Option<Vec<u8>>,
    /// The errors those bytes loaded with; empty when they loaded cleanly into `last_good`.
    errors: Vec<Diagnostic>,
    /// The newest load of this file without errors.
    last_good: Option<Loaded>,
}

/// What a directory contributes now.
#[derive(Debug, Default)]
pub struct Merged {
    /// Every contribution merged: no errors, the files' warnings and cross-file duplicates.
    pub loaded: Loaded,
    /// Files with errors, in name order.
    pub failing: Vec<Failing>,
    /// Files parsed by this refresh: new or changed ones. The others' results were kept.
    pub parsed: usize,
}

/// A file whose newest version does not load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failing {
    pub file: PathBuf,
    pub errors: Vec<Diagnostic>,
    /// Its last good resources serve in its place; otherwise it contributes nothing.
    pub serving_last_good: bool,
}

impl PerFile {
    /// Loads what changed under `dir` and merges every file's contribution. Files no longer there
    /// are forgotten. An error means the directory could not be listed: nothing was changed.
    pub fn refresh(&mut self, dir: &Path) -> io::Result<Merged> {
        let paths = policy_files(dir)?;
        let mut previous = std::mem::take(&mut self.files);
        let mut merged = Loader::new();
        let mut failing = Vec::new();
        let mut parsed = 0;
        for path in paths {
            let mut file = previous.remove(&path).unwrap_or(FileLoad {
                bytes: None,
                errors: Vec::new(),
                last_good: None,
            });
            parsed += usize::from(file.refresh(&path));
            if let Some(good) = &file.last_good {
                merged.add_loaded(good.clone());
            }
            if !file.errors.is_empty() {
                failing.push(Failing {
                    file: path.clone(),
                    errors: file.errors.clone(),
                    serving_last_good: file.last_good.is_some(),
                });
            }
            self.files.insert(path, file);
        }
        Ok(Merged {
            loaded: merged.finish(),
            failing,
            parsed,
        })
    }
}

impl FileLoad {
    /// Reads the file, and loads it if its bytes changed. Returns whether it was parsed.
    fn refresh(&mut self, path: &Path) -> bool {
        let bytes = match read(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.bytes = None;
                self.errors = vec![e.diagnostic(path)];
                return false;
            }
        };
        if self.bytes.as_ref() == Some(&bytes) {
            return false;
        }
        let mut loader = Loader::new();
        add_bytes(&mut loader, path, &bytes);
        let loaded = loader.finish();
        self.bytes = Some(bytes);
        if loaded.is_valid() {
            self.errors.clear();
            self.last_good = Some(loaded);
        } else {
            self.errors = loaded.errors().cloned().collect();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_new_and_changed_files_are_parsed_again() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("a.yaml", "apiVersion: v1\nkind: ConfigMap\n");
        write("b.yaml", "apiVersion: v1\nkind: Service\n");
        let mut files = PerFile::default();
        assert_eq!(files.refresh(dir.path()).unwrap().parsed, 2);
        let cached = files.refresh(dir.path()).unwrap();
        assert_eq!((cached.parsed, cached.loaded.skipped), (0, 2));

        write(
            "b.yaml",
            "apiVersion: v1\nkind: Service\n---\nkind: Secret\napiVersion: v1\n",
        );
        write("c.yaml", "kind: [");
        let changed = files.refresh(dir.path()).unwrap();
        assert_eq!((changed.parsed, changed.loaded.skipped), (2, 3));
        assert_eq!(changed.failing.len(), 1);
        // A broken file that did not change stays reported, without being parsed again.
        let cached = files.refresh(dir.path()).unwrap();
        assert_eq!((cached.parsed, cached.failing), (0, changed.failing));
    }
}
