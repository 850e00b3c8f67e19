//! `smictl token create`: a join token for a workload, signed with the state directory's key,
//! or with the one in etcd (`--etcd ... --seal-key FILE`). The token goes to stdout; its id
//! (for `smictl revoke --token`) and what it allows to stderr.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use smi_core::{DEFAULT_TRUST_DOMAIN, ServiceAccount, ServiceRef};

use super::EtcdArgs;
use super::args::usage;
use super::duration::parse_duration;
use super::output::{Out, diag, finish};
use super::revoke::utc;
use crate::ca::{Authority, CaStore};
use crate::enroll::JoinTokens;
use crate::traits::{StateStore, StoreError};

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// The control service's state directory.
    #[arg(
        long,
        required_unless_present = "endpoints",
        conflicts_with = "endpoints"
    )]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub etcd: EtcdArgs,
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
    let (ca, key, revoke_with) = match signer(args) {
        Ok(signer) => signer,
        Err(e) => return usage(&e),
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
        "token id {}: enrolls {} workload(s) as {} until {}; revoke it with `smictl revoke {} --token {}`",
        made.jti,
        args.uses,
        args.identity,
        utc(crate::ca::unix_now() + args.ttl.as_secs()),
        revoke_with,
        made.jti
    );
    let written = writeln!(out, "{}", made.token);
    finish(out, ExitCode::SUCCESS, written)
}

/// The CA, the token key, and the arguments that name where they are (for `smictl revoke`).
fn signer(args: &TokenCreateArgs) -> Result<(Authority, Vec<u8>, String), String> {
    let message = |e: StoreError| e.to_string();
    if let Some(state_dir) = &args.state_dir {
        let store = CaStore::new(state_dir);
        // Creating the CA here too means a token can be made before the first `serve`.
        let ca = store.open_or_init(&args.trust_domain).map_err(message)?;
        let key = store.token_key().map_err(message)?;
        return Ok((ca, key, format!("--state-dir {}", state_dir.display())));
    }
    let etcd = args.etcd.require()?;
    let store = etcd.store();
    // As with a state directory, the first replica's CA or this one, whichever is first.
    let ca = store.authority(&args.trust_domain).map_err(message)?;
    let key = store.token_key().map_err(message)?;
    let mut revoke_with = format!("--etcd {}", args.etcd.endpoints.join(","));
    if args.etcd.etcd_prefix != crate::etcd::DEFAULT_PREFIX {
        revoke_with += &format!(" --etcd-prefix {}", args.etcd.etcd_prefix);
    }
    Ok((ca, key, revoke_with))
}
