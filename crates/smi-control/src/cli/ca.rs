//! `smictl ca rotate`: start signing with a new root; keep trusting the old one for a while.
//! The CA is in the state directory, or in etcd (`--etcd ... --seal-key FILE`), where every
//! replica takes the new root when it sees it changed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use smi_core::DEFAULT_TRUST_DOMAIN;

use super::EtcdArgs;
use super::args::usage;
use super::duration::parse_duration;
use super::output::{Out, finish};
use crate::ca::{Authority, CaStore};
use crate::traits::StateStore;

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The control service's state directory.
    #[arg(
        long,
        required_unless_present = "endpoints",
        conflicts_with = "endpoints"
    )]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// How long the old root stays in the trust bundle (longer than the certificate lifetime,
    /// so that every workload renews under the new root first).
    #[arg(long, default_value = "48h", value_parser = parse_duration)]
    pub overlap: Duration,
    #[arg(long, default_value = DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,
}

pub fn rotate(args: &RotateArgs, out: Out<'_>) -> ExitCode {
    match rotated(args) {
        Ok(ca) => {
            let written = writeln!(
                out,
                "rotated: signing with a new root; {} root(s) trusted; the old root retires in {} s",
                ca.bundle().len(),
                args.overlap.as_secs()
            );
            finish(out, ExitCode::SUCCESS, written)
        }
        Err(e) => usage(&e),
    }
}

/// Rotates, and reads the CA back.
fn rotated(args: &RotateArgs) -> Result<Authority, String> {
    if let Some(state_dir) = &args.state_dir {
        let store = CaStore::new(state_dir);
        store
            .rotate(&args.trust_domain, args.overlap)
            .map_err(|e| e.to_string())?;
        return store.load(&args.trust_domain).map_err(|e| e.to_string());
    }
    let etcd = args.etcd.require()?;
    etcd.store()
        .rotate(&args.trust_domain, args.overlap)
        .map_err(|e| e.to_string())?;
    // This connection's mirror learns of the write from its watch, a moment later; a new
    // connection lists the keys as they are now.
    let etcd = args.etcd.require()?;
    etcd.store()
        .authority(&args.trust_domain)
        .map_err(|e| e.to_string())
}
