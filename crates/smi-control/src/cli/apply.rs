//! The policy in etcd (`smi-control serve --etcd`), one SMI resource per key
//! (`policy/<Kind>/<namespace>/<name>`, the object as written, in JSON):
//!
//! - `smictl apply -f FILE|DIR [-f ...] --etcd URL,... [--dry-run]`: the files are loaded as
//!   `smictl validate` loads them, and nothing is written if they have an error; nor if the
//!   policy etcd would then hold does not load. Every resource that differs from its stored value
//!   is written in one transaction, on the revisions read: if another writer changed one of them
//!   meanwhile, nothing is written. One line per resource on stdout,
//!   `traffictarget.access.smi-spec.io shop/reviews created` (or `configured`, `unchanged`);
//!   with `--dry-run` each ends in ` (dry run)`, nothing is written, and a configured resource's
//!   line is followed by a unified diff of its stored JSON to the new one. Warnings, and a
//!   summary, go to stderr.
//! - `smictl get KIND [NAME] [-n NS] [-o json|name] --etcd ...`: a table (`NAMESPACE NAME
//!   APIVERSION`, every namespace without `-n`), the stored objects (`-o json`: an array, or
//!   the object for a NAME) or `namespace/name` lines (`-o name`).
//! - `smictl delete KIND NAME [-n NS] --etcd ... [--dry-run]`: `... shop/reviews deleted`, on
//!   the revision read, if the policy left still loads (what it leaves dangling is a warning).
//! - `smictl etcd seal-key --out FILE`: a new key for `--seal-key`.
//!
//! A NAME without `-n` is in `default`, the namespace the loader gives an object without one.
//! Exit codes: 0 done (or shown); 1 the resource `get` or `delete` names is not stored; 2 usage
//! errors, policy that does not load, a conflict with another writer, or etcd not answering.

mod combined;
mod delete;
mod diff;
mod get;
mod kind;
mod objects;
mod plan;
mod seal_key;
mod txn;

pub use delete::{DeleteArgs, delete};
pub use get::{GetArgs, get};
pub use seal_key::{SealKeyArgs, seal_key};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::EXIT_USAGE;
use super::EtcdArgs;
use super::args::usage;
use super::output::{Out, diag, finish};
use crate::files::load_paths;
use objects::{Object, read_objects};
use txn::CommitError;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// SMI files or directories (YAML or JSON, multi-document); repeat for more.
    #[arg(
        short = 'f',
        long = "filename",
        required = true,
        value_name = "FILE|DIR"
    )]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// Say what would change, and how, without writing it.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: &ApplyArgs, out: Out<'_>) -> ExitCode {
    if args.etcd.endpoints.is_empty() {
        return usage("--etcd URL[,URL...] is required");
    }
    // Before etcd is contacted: invalid files are refused without it.
    let (objects, skipped) = match load(&args.files) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let etcd = match args.etcd.require() {
        Ok(etcd) => etcd,
        Err(e) => return usage(&e),
    };
    // The revision first: what is read below is at least as new, so a change made since
    // fails the transaction instead of slipping past the validation.
    let policy_prefix = etcd.mirror().keys().policy_prefix();
    let read = txn::ReadAt {
        prefix: &policy_prefix,
        revision: etcd.mirror().revision(),
    };
    let stored = combined::stored(&etcd);
    let planned = plan::plan(objects, &stored, etcd.mirror().keys());
    let before = combined::values(&stored);
    let mut after = before.clone();
    let writes: Vec<txn::Write> = planned.iter().filter_map(plan::Planned::write).collect();
    for write in &writes {
        if let Some(value) = &write.value {
            after.insert(write.key.clone(), value.as_slice().into());
        }
    }
    if let Err(code) = refuse_unless_it_loads(&before, &after, "nothing written") {
        return code;
    }
    let request = match txn::request(&writes, read) {
        Ok(request) => request,
        Err(e) => return usage(&format!("{e}; nothing written")),
    };
    if !args.dry_run && !writes.is_empty() {
        match txn::commit(&etcd, request, &writes) {
            Ok(()) => {}
            Err(CommitError::Conflict(keys)) => {
                return usage(&format!(
                    "changed by someone else while applying ({}); nothing written; run it again",
                    keys.join(", ")
                ));
            }
            Err(e) => {
                return usage(&format!(
                    "{e}; it may or may not have been written: run it again (what is applied already shows as unchanged)"
                ));
            }
        }
    }
    let written = planned.iter().try_for_each(|p| {
        writeln!(out, "{}", p.line(args.dry_run))?;
        if args.dry_run {
            p.diff()
                .iter()
                .try_for_each(|line| writeln!(out, "{line}"))?;
        }
        Ok(())
    });
    let count = |verb| planned.iter().filter(|p| p.verb() == verb).count();
    diag!(
        "{}{} created, {} configured, {} unchanged, {skipped} other document(s) skipped",
        if args.dry_run {
            "dry run, nothing written: "
        } else {
            ""
        },
        count("created"),
        count("configured"),
        count("unchanged"),
    );
    finish(out, ExitCode::SUCCESS, written)
}

/// The files' SMI objects, loaded as `smictl validate` loads them, and the number of other
/// documents; their diagnostics printed. Files with an error, or without SMI resources, are a
/// usage error.
fn load(files: &[PathBuf]) -> Result<(Vec<Object>, usize), ExitCode> {
    let loaded = load_paths(files);
    for d in &loaded.diagnostics {
        let level = if d.is_error() { "error" } else { "warning" };
        diag!("{level}: {d}");
    }
    if !loaded.is_valid() {
        diag!("error: the files do not load; nothing written");
        return Err(ExitCode::from(EXIT_USAGE));
    }
    let objects = read_objects(files).map_err(|e| usage(&e))?;
    if objects.is_empty() {
        return Err(usage(&format!(
            "no SMI resource in the files ({} other document(s) skipped); nothing written",
            loaded.skipped
        )));
    }
    Ok((objects, loaded.skipped))
}

/// Prints the new warnings of the change from `before` to `after`; its errors, and the usage
/// exit code, when the policy would not load.
fn refuse_unless_it_loads(
    before: &combined::Values,
    after: &combined::Values,
    nothing: &str,
) -> Result<(), ExitCode> {
    let verdict = combined::check(before, after);
    for e in &verdict.errors {
        diag!("error: {e}");
    }
    if !verdict.errors.is_empty() {
        // The errors name their keys: a stored value in error (written by other means) is
        // replaced with `smictl apply`, or removed with `smictl delete`.
        return Err(usage(&format!(
            "the policy in etcd would not load with this change (the errors name the keys); {nothing}"
        )));
    }
    for w in &verdict.new_warnings {
        diag!("warning: {w}");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
