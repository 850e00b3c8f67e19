//! `smictl validate PATH...`

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use smi_core::{Options, Snapshot};

use crate::source;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// SMI files or directories.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Errors go to stdout, one per line (`path:doc N: Kind ns/name: field: message`), so that
/// scripts can read them; warnings and the summary go to stderr.
pub fn run(args: &ValidateArgs) -> ExitCode {
    let loaded = source::load_paths(&args.paths);
    let mut warnings: Vec<String> = loaded.warnings().map(ToString::to_string).collect();
    let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
    let resources = loaded.policy.len();
    if errors.is_empty() {
        // Cross-resource problems (dangling references, competing splits) show at compile time.
        let snapshot = Snapshot::compile(loaded.policy, Options::default());
        warnings.extend(snapshot.warnings().iter().map(ToString::to_string));
    }
    for e in &errors {
        println!("{e}");
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    eprintln!(
        "{}: {resources} SMI resource(s), {} other document(s) skipped, {} error(s), {} warning(s)",
        if errors.is_empty() {
            "valid"
        } else {
            "invalid"
        },
        loaded.skipped,
        errors.len(),
        warnings.len()
    );
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
