//! `smictl token create`: a join token for a workload, signed with the state directory's key.
//! The token goes to stdout; its id (for `smictl revoke --token`) and what it allows to stderr.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use smi_core::{DEFAULT_TRUST_DOMAIN, ServiceAccount, ServiceRef};

use super::args::usage;
use super::duration::parse_duration;
use super::output::{Out, diag, finish};
use super::revoke::utc;
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
    /// How many workloads (certificates) the token enrolls; each enrollment uses it once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub uses: u32,
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
    let made = tokens.create_with_uses(
        &args.identity,
        &args.serves,
        args.ttl,
        ca.bundle(),
        args.uses,
    );
    diag!(
        "token id {}: enrolls {} workload(s) as {} until {}; revoke it with `smictl revoke --state-dir {} --token {}`",
        made.jti,
        args.uses,
        args.identity,
        utc(crate::ca::unix_now() + args.ttl.as_secs()),
        args.state_dir.display(),
        made.jti
    );
    let written = writeln!(out, "{}", made.token);
    finish(out, ExitCode::SUCCESS, written)
}
