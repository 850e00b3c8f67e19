//! A control service running as a process, with its policy and state directories: what the
//! end-to-end attack tests (`hardening`, `quotas`, `revocation`) start from.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use smi_client::control::ControlAddr;
use smi_client::{Mesh, MeshConfig};

use crate::{Process, join_token};

/// How long a workload may take to start.
const START: Duration = Duration::from_secs(30);

/// The control process (`smi-test-control`, certificates of 600 s) over a policy directory.
#[derive(Debug)]
pub struct LiveControl {
    _dir: tempfile::TempDir,
    pub policy: PathBuf,
    pub state: PathBuf,
    pub control: Process,
    env: Vec<(String, String)>,
}

impl LiveControl {
    /// Writes `files` (name, text) into a new policy directory and starts the control over it,
    /// with `env` (`SMI_TEST_*` settings).
    pub async fn start(files: &[(&str, &str)], env: &[(&str, &str)]) -> LiveControl {
        let dir = tempfile::tempdir().unwrap();
        let (policy, state) = (dir.path().join("policy"), dir.path().join("state"));
        std::fs::create_dir_all(&policy).unwrap();
        for (name, text) in files {
            std::fs::write(policy.join(name), text).unwrap();
        }
        let control = Process::control_with(&policy, &state, Duration::from_secs(600), env).await;
        LiveControl {
            _dir: dir,
            policy,
            state,
            control,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// The control's API address.
    pub fn addr(&self) -> ControlAddr {
        ControlAddr::parse(&self.control.addrs[0].to_string()).unwrap()
    }

    /// Mesh settings for `identity` with `token`, calling `calls`.
    pub fn config(&self, identity: &str, token: String, calls: &[&str]) -> MeshConfig {
        MeshConfig::new(self.addr(), token)
            .calls(calls.iter().copied())
            .workload(identity)
    }

    /// A workload of `identity` (a fresh join token) calling `calls`, started.
    pub async fn mesh(&self, identity: &str, calls: &[&str]) -> Mesh {
        let token = join_token(&self.state, identity, &[]);
        tokio::time::timeout(START, Mesh::start(self.config(identity, token, calls)))
            .await
            .expect("a workload starts")
            .unwrap()
    }

    /// A meshed `smi-conformance-app` (see [`Process::app`]).
    pub async fn app(&self, name: &str, identity: &str, service: &str) -> Process {
        Process::app(self.control.addrs[0], &self.state, name, identity, service).await
    }

    /// Stops the control (it must not have panicked) and starts it again on the same
    /// directories and settings.
    pub async fn restart(&mut self) {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let next =
            Process::control_with(&self.policy, &self.state, Duration::from_secs(600), &env).await;
        let stopped = std::mem::replace(&mut self.control, next);
        let stderr = stopped.still_alive_then_stop("the control").await;
        assert!(
            !stderr.contains("panicked"),
            "the control panicked:\n{stderr}"
        );
    }

    /// Stops `apps`, then the control; none may have panicked.
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
}
