//! How every file of the state directory is read and written, strictly:
//!
//! - Every write goes to a new temporary file with a random name, created exclusively
//!   (`O_EXCL`, `O_NOFOLLOW`) with its final mode, and is then renamed into place (or, for a
//!   file made on first use, linked: whoever creates it first wins), so a reader never sees
//!   half a file, a key readable by others, or a file reached through a planted link.
//! - Secrets are read with `O_NOFOLLOW` and refused when their mode lets the group or others
//!   in, or when they are not regular files.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::traits::StoreError;

/// Mode bits that let the group or others in; a secret must have none of them.
const GROUP_OTHER: u32 = 0o077;

/// Reads a secret file: `None` when it does not exist; an error when it is a symbolic link
/// (`O_NOFOLLOW`), not a regular file, readable by the group or others, or not UTF-8.
pub(crate) fn read_secret(path: &Path) -> Result<Option<String>, StoreError> {
    // O_NONBLOCK: a FIFO planted here must not hang the open; it is refused below. (It changes
    // nothing for regular files.)
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let mut file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        // ELOOP (Linux, macOS) or EMLINK (FreeBSD): the last component is a symbolic link.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::EMLINK)) => {
            return Err(invalid(
                path,
                "is a symbolic link; secrets are only read from regular files (replace the link with the file)".into(),
            ));
        }
        Err(e) => return Err(io(path, e)),
    };
    let meta = file.metadata().map_err(|e| io(path, e))?;
    if !meta.is_file() {
        return Err(invalid(path, "not a regular file".into()));
    }
    let mode = meta.mode() & 0o7777;
    if mode & GROUP_OTHER != 0 {
        return Err(invalid(
            path,
            format!(
                "mode {mode:04o} lets the group or others read this secret; run `chmod 600 {}`",
                path.display()
            ),
        ));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| io(path, e))?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| invalid(path, "not UTF-8 text".into()))
}

/// Replaces `path` with `bytes` in one step (rename of a temporary file created with `mode`),
/// and syncs the directory, so that the new entry survives a crash (the version mark must never
/// roll back).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    let tmp = write_temp(path, bytes, mode)?;
    if let Err(source) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(io(path, source));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| io(dir, source))?;
    }
    Ok(())
}

/// Creates `path` with `bytes` unless it exists: `Ok(false)` when it did. The temporary file is
/// hard-linked into place, which fails on any existing entry (a link planted there included),
/// so two processes creating the same file agree on one content.
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<bool, StoreError> {
    let tmp = write_temp(path, bytes, mode)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(path, e)),
    }
}

/// A new file beside `path` (`.name.<random>.tmp`) holding `bytes`, synced; created with
/// `O_EXCL` and `O_NOFOLLOW`, so nothing already at that name (a planted link) is written through.
fn write_temp(path: &Path, bytes: &[u8], mode: u32) -> Result<PathBuf, StoreError> {
    let mut random = [0u8; 8];
    aws_lc_rs::rand::fill(&mut random).map_err(|_| no_randomness(path))?;
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.{suffix}.tmp"));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(|source| io(&tmp, source))?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    if let Err(source) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io(&tmp, source));
    }
    Ok(tmp)
}

pub(crate) fn io(path: &Path, source: io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

pub(crate) fn invalid(path: &Path, message: String) -> StoreError {
    StoreError::Invalid {
        path: path.to_owned(),
        message,
    }
}

pub(crate) fn no_randomness(path: &Path) -> StoreError {
    invalid(path, "no randomness available".into())
}
