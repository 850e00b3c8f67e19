//! What the workload fixtures need of a control service under test, in-process
//! ([`crate::LocalControl`]) or a process ([`crate::LiveControl`]): where its API listens and its
//! directories. The provided methods mint tokens, start workloads and write policy files the
//! same way for both.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use smi_client::control::{ClientError, ControlAddr, Credentials, connect, enroll};
use smi_client::{Mesh, MeshConfig};
use smi_core::proto::v1::control_client::ControlClient;
use tonic::transport::Channel;

use crate::token::join_token;

/// How long a workload may take to start (enroll, then its first policy).
pub const START: Duration = Duration::from_secs(30);

/// A control service under test. Implementors say where it is; the rest comes with the trait.
// The futures are awaited where they are made (no test spawns them), so which auto traits
// they have does not matter: `async fn` is clearer than `impl Future + Send` here.
#[allow(async_fn_in_trait)]
pub trait Control {
    /// The control's API address.
    fn addr(&self) -> ControlAddr;
    /// Its state directory (CA, token key): where join tokens are made.
    fn state_dir(&self) -> &Path;
    /// Its policy directory, which it watches.
    fn policy_dir(&self) -> &Path;

    /// A fresh single-use join token for `identity` (`ns/name`) that may serve `serves`.
    fn token(&self, identity: &str, serves: &[&str]) -> String {
        join_token(self.state_dir(), identity, serves)
    }

    /// Mesh settings for a workload of `identity` enrolling with `token`, calling `calls`.
    fn config(&self, identity: &str, token: String, calls: &[&str]) -> MeshConfig {
        MeshConfig::new(self.addr(), token)
            .calls(calls.iter().copied())
            .workload(identity)
    }

    /// A workload of `identity` (a fresh join token) that may serve `serves` and calls
    /// `calls`, started: enrolled, with its first policy.
    async fn mesh(&self, identity: &str, serves: &[&str], calls: &[&str]) -> Mesh {
        let config = self.config(identity, self.token(identity, serves), calls);
        tokio::time::timeout(START, Mesh::start(config))
            .await
            .unwrap_or_else(|_| panic!("{identity} did not start within {START:?}"))
            .unwrap_or_else(|e| panic!("{identity} did not start: {e}"))
    }

    /// Credentials for `identity` that may serve `serves`, enrolled with a fresh join token.
    async fn enroll(&self, identity: &str, serves: &[&str]) -> Credentials {
        enroll(&self.addr(), &self.token(identity, serves))
            .await
            .unwrap_or_else(|e| panic!("enrolling {identity}: {e}"))
    }

    /// A control API client authenticated with `credentials`.
    async fn client(&self, credentials: &Credentials) -> ControlClient<Channel> {
        let channel = connect(&self.addr(), credentials)
            .await
            .unwrap_or_else(|e| panic!("connecting to the control: {e}"));
        ControlClient::new(channel)
    }

    /// Writes a policy file the way tools do: a temporary file renamed into place, so the
    /// control never reads half of it.
    fn write_policy(&self, name: &str, text: &str) {
        write_file(self.policy_dir(), name, text);
    }

    /// `smictl revoke --state-dir <state> <args>` (see [`smictl`]); returns when the deny list
    /// is written.
    fn revoke(&self, args: &[&str]) {
        let state = self.state_dir().to_str().expect("a UTF-8 state directory");
        let mut argv = vec!["smictl", "revoke", "--state-dir", state];
        argv.extend_from_slice(args);
        assert_eq!(smictl(&argv), ExitCode::SUCCESS, "{argv:?}");
    }

    /// Deletes a policy file.
    fn remove_policy(&self, name: &str) {
        let path = self.policy_dir().join(name);
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("removing {}: {e}", path.display()));
    }
}

/// smictl's own code (`smi_control::cli::run`) on `argv` (its first word is the program name),
/// as its binary runs it: for what smictl writes to a state directory, without a process.
pub fn smictl(argv: &[&str]) -> ExitCode {
    let cli = smi_control::cli::Cli::try_parse_from(argv)
        .unwrap_or_else(|e| panic!("smictl {argv:?}: {e}"));
    smi_control::cli::run(cli)
}

/// The control's reason for refusing an enrollment or a renewal; panics if it was not refused.
pub fn refused(result: Result<Credentials, ClientError>) -> String {
    match result {
        Err(ClientError::Refused(message)) => message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Asserts that a call was refused with `code` and a message that says `says`.
pub fn assert_status(status: &tonic::Status, code: tonic::Code, says: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert!(status.message().contains(says), "{}", status.message());
}

/// Writes `dir/name` as a temporary file renamed into place.
pub(crate) fn write_file(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("writing {}: {e}", tmp.display()));
    std::fs::rename(&tmp, dir.join(name))
        .unwrap_or_else(|e| panic!("renaming {} into place: {e}", tmp.display()));
}
