//! `smictl`: offline answers about SMI policy, and control-service administration.
//!
//! Exit codes are a stable interface: `validate` 0 valid / 1 invalid; `check` 0 allow / 1 deny;
//! `revoke` 0 done; `top` 0 shown / 1 the control could not answer; `apply` 0 applied (or shown,
//! with `--dry-run`); `get` and `delete` 0 done / 1 not found; every command 2 for usage errors,
//! policy that does not load, a state directory that cannot be read or written, etcd not
//! answering, or a conflict with another writer (`apply`, `delete`: then nothing is written).
//! They hold when stdout is closed early (`| head`): output goes through `output::finish`, never a panicking `println!`.

pub mod admin_api;
mod apply;
mod args;
mod ca;
mod check;
mod crds;
pub mod duration;
mod escape;
mod etcd_args;
mod output;
mod revoke;
mod route;
mod status;
mod token;
mod top;
mod validate;

use std::io;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use etcd_args::EtcdArgs;

/// Usage error or policy that does not load.
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "smictl",
    version,
    about = "Validate SMI policy and ask it questions offline"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check SMI files and directories; exit 0 when valid (warnings printed), 1 when invalid.
    Validate(validate::ValidateArgs),
    /// Would a source be allowed to call a destination this way? Exit 0 allow, 1 deny.
    Check(check::CheckArgs),
    /// Where does a request to a service go (TrafficSplit backends and their shares)?
    Route(route::RouteArgs),
    /// Join tokens for workloads.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The certificate authority.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Revoke a workload identity or a join token (the control's deny list), or list them.
    Revoke(revoke::RevokeArgs),
    /// Summary of a running control service (policy health, connected workloads).
    Status(status::StatusArgs),
    /// Traffic of deployments, pods, TrafficSplit backends or one resource's edges, from a
    /// running control's TrafficMetrics API (success rate, requests per second, latencies).
    Top(top::TopArgs),
    /// Write SMI files to the policy in etcd (after `validate`'s checks), in one transaction.
    Apply(apply::ApplyArgs),
    /// The SMI resources of a kind in etcd, or one of them.
    Get(apply::GetArgs),
    /// Delete an SMI resource from etcd.
    Delete(apply::DeleteArgs),
    /// What the control keeps in etcd.
    #[command(subcommand)]
    Etcd(EtcdCommand),
    /// Print the SMI CustomResourceDefinitions (every version) for `kubectl apply -f -`.
    Crds(crds::CrdsArgs),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a join token for a workload identity.
    Create(token::TokenCreateArgs),
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Sign with a new root; keep the old one trusted for an overlap period.
    Rotate(ca::RotateArgs),
}

#[derive(Debug, Subcommand)]
pub enum EtcdCommand {
    /// Make the key the CA and the token key are sealed with in etcd (`--seal-key`).
    SealKey(apply::SealKeyArgs),
}

/// Runs a command with its output on stdout; returns its documented exit code.
pub fn run(cli: Cli) -> ExitCode {
    let stdout = io::stdout();
    let out = &mut stdout.lock();
    match cli.command {
        Command::Validate(args) => validate::run(&args, out),
        Command::Check(args) => check::run(&args, out),
        Command::Route(args) => route::run(&args, out),
        Command::Token(TokenCommand::Create(args)) => token::create(&args, out),
        Command::Ca(CaCommand::Rotate(args)) => ca::rotate(&args, out),
        Command::Revoke(args) => revoke::run(&args, out),
        Command::Status(args) => status::run(&args, out),
        Command::Top(args) => top::run(&args, out),
        Command::Apply(args) => apply::run(&args, out),
        Command::Get(args) => apply::get(&args, out),
        Command::Delete(args) => apply::delete(&args, out),
        Command::Etcd(EtcdCommand::SealKey(args)) => apply::seal_key(&args, out),
        Command::Crds(args) => crds::run(&args, out),
    }
}
