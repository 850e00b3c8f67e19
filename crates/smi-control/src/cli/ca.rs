//! `smictl ca rotate`: start signing with a new root; keep trusting the old one for a while.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use smi_core::DEFAULT_TRUST_DOMAIN;

use super::args::usage;
use super::duration::parse_duration;
use super::output::{Out, finish};
use crate::ca::CaStore;

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[arg(long)]
    pub state_dir: PathBuf,
    /// How long the old root stays in the trust bundle (longer than the certificate lifetime,
    /// so that every workload renews under the new root first).
    #[arg(long, default_value = "48h", value_parser = parse_duration)]
    pub overlap: Duration,
    #[arg(long, default_value = DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,
}

pub fn rotate(args: &RotateArgs, out: Out<'_>) -> ExitCode {
    let store = CaStore::new(&args.state_dir);
    if let Err(e) = store.rotate(&args.trust_domain, args.overlap) {
        return usage(&e.to_string());
    }
    match store.load(&args.trust_domain) {
        Ok(ca) => {
            let written = writeln!(
                out,
                "rotated: signing with a new root; {} root(s) trusted; the old root retires in {} s",
                ca.bundle().len(),
                args.overlap.as_secs()
            );
            finish(out, ExitCode::SUCCESS, written)
        }
        Err(e) => usage(&e.to_string()),
    }
}
