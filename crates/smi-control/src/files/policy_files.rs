//! Policy from files and directories: every `.yaml`, `.yml` and `.json` file under a directory
//! (recursively, in name order, hidden entries skipped so that editor swap files and the `..data`
//! links of Kubernetes ConfigMap volumes are not read twice), or a file named directly.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use smi_core::load::{Format, Loaded, Loader, limits};

use crate::source::{add_document, unreadable};
use crate::traits::{Content, PolicyDocument};

/// Loads every policy file under `paths`, all in one [`Loader`] (as `smictl` does). Unreadable
/// files become error diagnostics.
pub fn load_paths<P: AsRef<Path>>(paths: &[P]) -> Loaded {
    let mut loader = Loader::new();
    for path in paths {
        let path = path.as_ref();
        match policy_files(path) {
            Ok(files) => {
                for file in files {
                    add_document(&mut loader, &read_document(&file));
                }
            }
            Err(e) => loader.add_diagnostic(unreadable(
                &path.display().to_string(),
                &format!("cannot read: {e}"),
            )),
        }
    }
    loader.finish()
}

/// The files a path stands for: itself, or the policy files under it in name order.
pub fn policy_files(path: &Path) -> io::Result<Vec<PathBuf>> {
    if !fs::metadata(path)?.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut out = Vec::new();
    collect(path, &mut out)?;
    Ok(out)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut entries = fs::read_dir(dir)?.collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        match fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => collect(&path, out)?,
            // A policy file that cannot be examined (a dangling link) fails on its own, when read.
            _ if is_policy_file(&path) => out.push(path),
            // Anything else is not policy, whatever state it is in (a dangling `notes.txt` link
            // must not stop the directory from loading).
            _ => {}
        }
    }
    Ok(())
}

fn is_policy_file(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("yaml" | "yml" | "json")
    )
}

/// A policy file as a document: its path is its origin; JSON for `.json`, YAML otherwise.
pub(super) fn read_document(path: &Path) -> PolicyDocument {
    let origin = path.display().to_string();
    let content = match read(path) {
        Ok(bytes) => Content::Text {
            bytes,
            format: Format::from_path(&origin),
        },
        Err(e) => Content::Unreadable(e.to_string()),
    };
    PolicyDocument { origin, content }
}

/// Why a policy file could not be read.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("cannot read: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Limit(#[from] limits::Exceeded),
}

/// Reads a policy file. One over [`limits::MAX_SOURCE_BYTES`] is refused without being read:
/// at most one byte more than the limit is read, in case it grew since it was examined.
fn read(path: &Path) -> Result<Vec<u8>, ReadError> {
    let file = fs::File::open(path)?;
    let len = file.metadata()?.len();
    limits::check_len(len)?;
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(limits::MAX_SOURCE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    limits::check_len(bytes.len() as u64)?;
    Ok(bytes)
}
