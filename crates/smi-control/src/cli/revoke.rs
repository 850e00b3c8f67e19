//! `smictl revoke`: the control's deny list (`revoked.json` in its state directory, or
//! `revoked` in etcd with `--etcd`).
//!
//! - `--identity NS/SA [--reason TEXT]`: the identity gets no certificate again (neither a first
//!   one nor a renewal), and every workload refuses it once the control has published the list
//!   (it watches the state directory; a fraction of a second).
//! - `--token JTI [--reason TEXT]`: the join token (its id, as `smictl token create` prints it)
//!   enrolls nothing more.
//! - `--list`: what is revoked, one line each.
//!
//! Exit codes: 0 done (revoking what already is revoked included: its reason is updated if one
//! is given), 2 usage error or a state directory (or etcd) that cannot be read or written. With
//! a state directory, run it on the control's host, one at a time: it rewrites the file whole.
//! In etcd the change is a transaction on the version read (made again if another came first).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Args};
use smi_core::{DEFAULT_TRUST_DOMAIN, ServiceAccount};

use super::EtcdArgs;
use super::args::usage;
use super::escape::escape;
use super::output::{Out, finish};
use crate::ca::unix_now;
use crate::etcd::EtcdStore;
use crate::revocation::{DenyList, check_jti, check_reason};
use crate::traits::{StateStore, StoreError};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").required(true).args(["identity", "token", "list"])))]
pub struct RevokeArgs {
    /// The control service's state directory.
    #[arg(
        long,
        required_unless_present = "endpoints",
        conflicts_with = "endpoints"
    )]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// Revoke a workload identity, `namespace/serviceaccount`.
    #[arg(long, value_name = "NS/SA")]
    pub identity: Option<ServiceAccount>,
    /// Revoke a join token by its id (`smictl token create` prints it on stderr).
    #[arg(long, value_name = "JTI")]
    pub token: Option<String>,
    /// Print the deny list.
    #[arg(long)]
    pub list: bool,
    /// Why: kept in the deny list and given to the refused workload (one line, at most 256
    /// characters).
    #[arg(long, value_name = "TEXT", conflicts_with = "list")]
    pub reason: Option<String>,
    /// Trust domain, for the SPIFFE ID printed.
    #[arg(long, default_value = DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,
}

/// Where the deny list is.
enum Store {
    Dir(PathBuf),
    Etcd(EtcdStore),
}

/// A change of the deny list; `true` when it revoked something new.
type Change<'a> = Box<dyn FnMut(&mut DenyList) -> bool + 'a>;

impl Store {
    fn deny_list(&self) -> Result<DenyList, StoreError> {
        match self {
            Store::Dir(dir) => DenyList::load(dir),
            Store::Etcd(store) => store.deny_list(),
        }
    }

    /// Makes `change` to `list` (as read) and saves it; in etcd, to the list as it is then.
    fn update(&self, mut list: DenyList, mut change: Change<'_>) -> Result<bool, StoreError> {
        match self {
            Store::Dir(dir) => {
                let new = change(&mut list);
                list.save(dir)?;
                Ok(new)
            }
            Store::Etcd(store) => store.update_deny_list(change),
        }
    }
}

pub fn run(args: &RevokeArgs, out: Out<'_>) -> ExitCode {
    if let Some(reason) = &args.reason
        && let Err(e) = check_reason(reason)
    {
        return usage(&format!("--reason: {e}"));
    }
    let store = match &args.state_dir {
        Some(dir) => Store::Dir(dir.clone()),
        None => match args.etcd.require() {
            Ok(etcd) => Store::Etcd(etcd.store()),
            Err(e) => return usage(&e),
        },
    };
    let list = match store.deny_list() {
        Ok(list) => list,
        Err(e) => return usage(&e.to_string()),
    };
    if args.list {
        let written = print_list(&list, out);
        return finish(out, ExitCode::SUCCESS, written);
    }
    let now = unix_now();
    let reason = &args.reason;
    let (change, what): (Change<'_>, String) = if let Some(identity) = &args.identity {
        let what = format!(
            "identity {identity} ({}): it gets no certificate, and workloads refuse it once the control publishes the list",
            identity.spiffe_id(&args.trust_domain)
        );
        let change = Box::new(move |list: &mut DenyList| {
            list.revoke_identity(identity, reason.clone(), now)
        });
        (change, what)
    } else if let Some(jti) = &args.token {
        if let Err(e) = check_jti(jti) {
            return usage(&format!("--token: {e}"));
        }
        let change =
            Box::new(move |list: &mut DenyList| list.revoke_token(jti, reason.clone(), now));
        (change, format!("join token {jti}: it enrolls nothing more"))
    } else {
        return usage("say what to revoke: --identity, --token, or --list");
    };
    let new = match store.update(list, change) {
        Ok(new) => new,
        Err(e) => return usage(&e.to_string()),
    };
    let verb = if new { "revoked" } else { "already revoked" };
    let written = writeln!(out, "{verb} {what}");
    finish(out, ExitCode::SUCCESS, written)
}

fn print_list(list: &DenyList, out: Out<'_>) -> std::io::Result<()> {
    if list.identities.is_empty() && list.tokens.is_empty() {
        return writeln!(out, "nothing is revoked");
    }
    let reason = |r: &Option<String>| {
        r.as_deref()
            .map_or_else(String::new, |r| format!("  reason \"{}\"", escape(r)))
    };
    for e in &list.identities {
        writeln!(
            out,
            "identity  {}  revoked {}{}",
            escape(&e.identity),
            utc(e.revoked_at_unix),
            reason(&e.reason)
        )?;
    }
    for e in &list.tokens {
        writeln!(
            out,
            "token     {}  revoked {}{}",
            escape(&e.jti),
            utc(e.revoked_at_unix),
            reason(&e.reason)
        )?;
    }
    Ok(())
}

/// `2024-01-31T12:00:00Z`.
pub(super) fn utc(unix: u64) -> String {
    let t = i64::try_from(unix)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with(args: &[&str]) -> (ExitCode, String) {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Cli {
            #[command(flatten)]
            args: RevokeArgs,
        }
        let cli =
            Cli::try_parse_from(std::iter::once("revoke").chain(args.iter().copied())).unwrap();
        let mut out = Vec::new();
        let code = run(&cli.args, &mut out);
        (code, String::from_utf8(out).unwrap())
    }

    #[test]
    fn revokes_an_identity_and_a_token_and_lists_them() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let state = state.to_str().unwrap();
        let (code, text) = run_with(&["--state-dir", state, "--list"]);
        assert_eq!(
            (code, text.as_str()),
            (ExitCode::SUCCESS, "nothing is revoked\n")
        );

        let (code, text) = run_with(&[
            "--state-dir",
            state,
            "--identity",
            "shop/web",
            "--reason",
            "key leaked",
        ]);
        assert_eq!(code, ExitCode::SUCCESS);
        assert!(
            text.starts_with("revoked identity shop/web (spiffe://cluster.local/ns/shop/sa/web)"),
            "{text}"
        );
        let (_, text) = run_with(&["--state-dir", state, "--identity", "shop/web"]);
        assert!(
            text.starts_with("already revoked identity shop/web"),
            "{text}"
        );
        let (code, _) = run_with(&["--state-dir", state, "--token", "00ff"]);
        assert_eq!(code, ExitCode::SUCCESS);

        let (_, text) = run_with(&["--state-dir", state, "--list"]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].starts_with("identity  shop/web  revoked 20"),
            "{text}"
        );
        assert!(lines[0].ends_with("reason \"key leaked\""), "{text}");
        assert!(lines[1].starts_with("token     00ff  revoked 20"), "{text}");
        let list = DenyList::load(std::path::Path::new(state)).unwrap();
        assert_eq!(list.identities[0].reason.as_deref(), Some("key leaked"));
    }

    #[test]
    fn refuses_what_is_not_a_token_id_or_a_one_line_reason() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().to_str().unwrap();
        let usage = ExitCode::from(super::super::EXIT_USAGE);
        assert_eq!(
            run_with(&["--state-dir", state, "--token", "not hex"]).0,
            usage
        );
        assert_eq!(
            run_with(&[
                "--state-dir",
                state,
                "--identity",
                "a/b",
                "--reason",
                "two\nlines"
            ])
            .0,
            usage
        );
        assert!(!DenyList::path(dir.path()).exists());
    }

    #[test]
    fn formats_times_in_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_700_000_123), "2023-11-14T22:15:23Z");
    }
}
