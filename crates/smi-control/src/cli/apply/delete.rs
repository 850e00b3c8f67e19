//! `smictl delete KIND NAME [-n NS]`: one resource out of etcd, on the revision read, if the
//! policy left still loads.

use std::process::ExitCode;

use clap::Args;

use super::kind::Kind;
use super::objects::describe;
use super::txn::{self, CommitError, Write};
use super::{combined, refuse_unless_it_loads};
use crate::cli::EtcdArgs;
use crate::cli::args::usage;
use crate::cli::output::{Out, diag, finish};

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// traffictarget (tt), httproutegroup (htr), tcproute, udproute or trafficsplit (ts).
    pub kind: Kind,
    pub name: String,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// Say what would be deleted, without deleting it.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn delete(args: &DeleteArgs, out: Out<'_>) -> ExitCode {
    let etcd = match args.etcd.require() {
        Ok(etcd) => etcd,
        Err(e) => return usage(&e),
    };
    let what = describe(args.kind, &args.namespace, &args.name);
    let key = etcd
        .mirror()
        .keys()
        .policy(args.kind.name(), &args.namespace, &args.name);
    let policy_prefix = etcd.mirror().keys().policy_prefix();
    let read = txn::ReadAt {
        prefix: &policy_prefix,
        revision: etcd.mirror().revision(),
    };
    let stored = combined::stored(&etcd);
    let Some(entry) = stored.get(&key) else {
        diag!("error: {what} not found");
        return ExitCode::from(1);
    };
    let before = combined::values(&stored);
    let mut after = before.clone();
    after.remove(&key);
    if let Err(code) = refuse_unless_it_loads(&before, &after, "nothing deleted") {
        return code;
    }
    let writes = [Write {
        key,
        revision: entry.mod_revision,
        value: None,
    }];
    if !args.dry_run {
        let committed = txn::request(&writes, read).and_then(|r| txn::commit(&etcd, r, &writes));
        match committed {
            Ok(()) => {}
            Err(CommitError::Conflict(_)) => {
                return usage(&format!(
                    "{what} was changed by someone else while deleting; nothing deleted; run it again"
                ));
            }
            Err(e) => return usage(&format!("{e}; it may or may not have been deleted")),
        }
    }
    let written = writeln!(
        out,
        "{what} deleted{}",
        if args.dry_run { " (dry run)" } else { "" }
    );
    finish(out, ExitCode::SUCCESS, written)
}
