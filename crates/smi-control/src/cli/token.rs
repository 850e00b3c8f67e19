//! `smictl token create`: a join token for a workload, signed with the state directory's key.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use smi_core::{DEFAULT_TRUST_DOMAIN, ServiceAccount, ServiceRef};

use super::args::usage;
use super::duration::parse_duration;
use super::output::{Out, finish};
use crate::ca::CaStore;
use crate::enroll::JoinTokens;

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// The control service's state directory.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// The workload's identity, `namespace/serviceaccount`.
    #[arg(long, value_name = "NS/SA")]
    pub identity: ServiceAccount,
    /// A service the workload may register endpoints for, `namespace/service`; repeat for more.
    #[arg(long, value_name = "NS/SERVICE")]
    pub serves: Vec<ServiceRef>,
    /// How long the token can be used to enroll.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub ttl: Duration,
    #[arg(long, default_value = DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,
}

pub fn create(args: &TokenCreateArgs, out: Out<'_>) -> ExitCode {
    let store = CaStore::new(&args.state_dir);
    // Creating the CA here too means a token can be made before the first `serve`.
    let ca = match store.open_or_init(&args.trust_domain) {
        Ok(ca) => ca,
        Err(e) => return usage(&e.to_string()),
    };
    let key = match store.token_key() {
        Ok(k) => k,
        Err(e) => return usage(&e.to_string()),
    };
    let tokens = JoinTokens::new(&key, &args.trust_domain);
    let token = tokens.create(&args.identity, &args.serves, args.ttl, ca.bundle());
    let written = writeln!(out, "{token}");
    finish(out, ExitCode::SUCCESS, written)
}
