//! A control service running as a process (`smi-test-control`) over temporary policy and state
//! directories: what the end-to-end attack and fault tests start from, since a process can be
//! killed, and a crash in it does not take the test with it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use smi_client::control::ControlAddr;

use crate::control::write_file;
use crate::{Control, Process};

/// The control process over its directories, with the settings it was started with.
#[derive(Debug)]
pub struct LiveControl {
    _dir: tempfile::TempDir,
    pub policy: PathBuf,
    pub state: PathBuf,
    pub control: Process,
    ttl: Duration,
    env: Vec<(String, String)>,
}

impl LiveControl {
    /// Writes `files` (name, text) into a new policy directory and starts the control over it,
    /// issuing certificates of 600 s, with `env` (`SMI_TEST_*` settings).
    pub async fn start(files: &[(&str, &str)], env: &[(&str, &str)]) -> LiveControl {
        LiveControl::start_with(files, env, Duration::from_secs(600)).await
    }

    /// [`LiveControl::start`] issuing certificates that live `ttl`.
    pub async fn start_with(
        files: &[(&str, &str)],
        env: &[(&str, &str)],
        ttl: Duration,
    ) -> LiveControl {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (policy, state) = (dir.path().join("policy"), dir.path().join("state"));
        std::fs::create_dir_all(&policy).expect("a policy directory");
        for (name, text) in files {
            write_file(&policy, name, text);
        }
        let any_port = "127.0.0.1:0".parse().expect("a socket address");
        let control = Process::control(&policy, &state, any_port, ttl, env).await;
        LiveControl {
            _dir: dir,
            policy,
            state,
            control,
            ttl,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// A meshed `smi-conformance-app` (see [`Process::app`]).
    pub async fn app(&self, name: &str, identity: &str, services: &[&str]) -> Process {
        Process::app(self.control.addrs[0], &self.state, name, identity, services).await
    }

    /// Kills the control (SIGKILL); [`LiveControl::start_again`] brings it back.
    pub async fn kill(&mut self) {
        self.control.kill().await;
    }

    /// Starts the control again on its API address, directories and settings (after
    /// [`LiveControl::kill`]).
    pub async fn start_again(&mut self) {
        self.control = self.spawn(self.control.addrs[0]).await;
    }

    /// Stops the control (it must not have panicked) and starts it again on the same
    /// directories and settings, on a new port.
    pub async fn restart(&mut self) {
        let any_port = "127.0.0.1:0".parse().expect("a socket address");
        let next = self.spawn(any_port).await;
        let stopped = std::mem::replace(&mut self.control, next);
        let stderr = stopped.still_alive_then_stop("the control").await;
        assert!(
            !stderr.contains("panicked"),
            "the control panicked:\n{stderr}"
        );
    }

    /// Stops `apps`, then the control; none may have exited or panicked.
    pub async fn stop(self, apps: Vec<Process>) {
        for app in apps {
            let stderr = app.still_alive_then_stop("an app").await;
            assert!(!stderr.contains("panicked"), "an app panicked:\n{stderr}");
        }
        let stderr = self.control.still_alive_then_stop("the control").await;
        assert!(
            !stderr.contains("panicked"),
            "the control panicked:\n{stderr}"
        );
    }

    async fn spawn(&self, listen: SocketAddr) -> Process {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Process::control(&self.policy, &self.state, listen, self.ttl, &env).await
    }
}

impl Control for LiveControl {
    fn addr(&self) -> ControlAddr {
        let addr = self.control.addrs[0].to_string();
        ControlAddr::parse(&addr).unwrap_or_else(|e| panic!("{addr}: {e}"))
    }

    fn state_dir(&self) -> &Path {
        &self.state
    }

    fn policy_dir(&self) -> &Path {
        &self.policy
    }
}
