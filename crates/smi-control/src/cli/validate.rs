//! `smictl validate PATH...`

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use smi_core::{Options, Snapshot};

use super::output::{Out, diag, finish};
use crate::files::load_paths;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// SMI files or directories.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Errors go to stdout, one per line (`path:doc N: Kind ns/name: field: message`), so that
/// scripts can read them; warnings and the summary go to stderr.
pub fn run(args: &ValidateArgs, out: Out<'_>) -> ExitCode {
    let loaded = load_paths(&args.paths);
    let mut warnings: Vec<String> = loaded.warnings().map(ToString::to_string).collect();
    let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
    let resources = loaded.policy.len();
    if errors.is_empty() {
        // Cross-resource problems (dangling references, competing splits) show at compile time.
        let options = Options::default();
        let advice = smi_core::policy::lint::broad_prefixes(&loaded.policy, options.path_match);
        warnings.extend(advice.iter().map(ToString::to_string));
        let snapshot = Snapshot::compile(loaded.policy, options);
        warnings.extend(snapshot.warnings().iter().map(ToString::to_string));
    }
    // When stdout's reader has gone (`| head -3`), the rest of the errors is dropped, but the
    // warnings and the summary still reach stderr.
    let written = errors.iter().try_for_each(|e| writeln!(out, "{e}"));
    for w in &warnings {
        diag!("warning: {w}");
    }
    diag!(
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
    let code = if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    finish(out, code, written)
}
