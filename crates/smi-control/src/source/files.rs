//! Policy from files and directories: every `.yaml`, `.yml` and `.json` file under a directory
//! (recursively, in name order, hidden entries skipped so that editor swap files and the `..data`
//! links of Kubernetes ConfigMap volumes are not read twice), or a file named directly.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use smi_core::load::{Diagnostic, Format, Loaded, Loader, Severity};

/// Loads every policy file under `paths`. Unreadable files become error diagnostics.
pub fn load_paths<P: AsRef<Path>>(paths: &[P]) -> Loaded {
    let mut loader = Loader::new();
    for path in paths {
        let path = path.as_ref();
        match policy_files(path) {
            Ok(files) => {
                for file in files {
                    load_file(&mut loader, &file);
                }
            }
            Err(e) => loader.add_diagnostic(io_error(path, &e)),
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
        if fs::metadata(&path)?.is_dir() {
            collect(&path, out)?;
        } else if is_policy_file(&path) {
            out.push(path);
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

fn load_file(loader: &mut Loader, path: &Path) {
    let name = path.display().to_string();
    match fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => loader.add_text(&name, &text, Format::from_path(&name)),
            Err(_) => loader.add_diagnostic(file_error(name, "not UTF-8 text".into())),
        },
        Err(e) => loader.add_diagnostic(io_error(path, &e)),
    }
}

fn io_error(path: &Path, e: &io::Error) -> Diagnostic {
    file_error(path.display().to_string(), format!("cannot read: {e}"))
}

fn file_error(name: String, message: String) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        origin: None,
        resource: None,
        field: None,
        message: format!("{name}: {message}"),
    }
}
