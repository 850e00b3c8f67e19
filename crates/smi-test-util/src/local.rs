//! A control service inside the test's own process (`smi_control::serve::start`) over temporary
//! policy and state directories, on 127.0.0.1: what the in-process end-to-end tests and the
//! data-plane benchmark start from. It can be shut down and started again on the same address
//! and directories, as a restarted control would be.

use std::path::{Path, PathBuf};

use smi_client::control::ControlAddr;
use smi_control::serve::{Running, ServeConfig, start};

use crate::Control;
use crate::control::write_file;

/// An in-process control service. Shut it down with [`LocalControl::shutdown`] at the end of a
/// test (dropping it leaves its servers to the runtime's end).
#[derive(Debug)]
pub struct LocalControl {
    _dir: tempfile::TempDir,
    pub policy: PathBuf,
    pub state: PathBuf,
    config: ServeConfig,
    running: Option<Running>,
}

impl LocalControl {
    /// Writes `files` (name, text) into a new policy directory and starts a control over it
    /// with the default settings.
    pub async fn start(files: &[(&str, &str)]) -> LocalControl {
        LocalControl::start_with(files, |config| config).await
    }

    /// [`LocalControl::start`] with settings: `configure` gets the default [`ServeConfig`] with
    /// the directories and loopback addresses (port 0) filled in, and returns the one to use.
    pub async fn start_with(
        files: &[(&str, &str)],
        configure: impl FnOnce(ServeConfig) -> ServeConfig,
    ) -> LocalControl {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary directory: {e}"));
        let (policy, state) = (dir.path().join("policy"), dir.path().join("state"));
        std::fs::create_dir_all(&policy)
            .unwrap_or_else(|e| panic!("creating {}: {e}", policy.display()));
        let loopback = "127.0.0.1:0".parse().expect("a socket address");
        let config = configure(ServeConfig {
            policy_dir: policy.clone(),
            state_dir: state.clone(),
            listen: loopback,
            admin: loopback,
            ..ServeConfig::default()
        });
        for (name, text) in files {
            write_file(&policy, name, text);
        }
        let mut control = LocalControl {
            _dir: dir,
            policy,
            state,
            config,
            running: None,
        };
        control.start_again().await;
        control
    }

    /// The running service: its addresses and the trust bundle it started with.
    pub fn running(&self) -> &Running {
        self.running
            .as_ref()
            .expect("the control is running (it was shut down)")
    }

    /// Stops the service (see [`Running::shutdown`]); the directories stay.
    pub async fn shutdown(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }

    /// Starts the service (again) on its directories and settings. After a shutdown its API
    /// listens where it did before, so that workloads reconnect; its admin server gets a new
    /// port.
    pub async fn start_again(&mut self) {
        self.shutdown().await;
        let running = start(self.config.clone())
            .await
            .unwrap_or_else(|e| panic!("starting the control service: {e}"));
        self.config.listen = running.api_addr;
        self.running = Some(running);
    }
}

impl Control for LocalControl {
    fn addr(&self) -> ControlAddr {
        let addr = self.running().api_addr.to_string();
        ControlAddr::parse(&addr).unwrap_or_else(|e| panic!("{addr}: {e}"))
    }

    fn state_dir(&self) -> &Path {
        &self.state
    }

    fn policy_dir(&self) -> &Path {
        &self.policy
    }
}
