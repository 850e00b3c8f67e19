//! Real processes for end-to-end tests: the control service (`smi-test-control`) and meshed
//! apps (`smi-conformance-app`), each printing `ready <addr> <addr>` once serving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// How long a process may take to print its ready line.
const READY: Duration = Duration::from_secs(20);

/// A process that prints `ready <addr> <addr>` once serving; its stderr is collected.
#[derive(Debug)]
pub struct Process {
    child: tokio::process::Child,
    pub addrs: Vec<SocketAddr>,
    stderr: tokio::task::JoinHandle<String>,
}

impl Process {
    /// The control service (`smi-test-control`) on 127.0.0.1, any port; workload certificates
    /// live `ttl`. `addrs`: the API, then the admin server.
    pub async fn control(policy: &Path, state: &Path, ttl: Duration) -> Process {
        Process::control_with(policy, state, ttl, &[]).await
    }

    /// [`Process::control`] with environment variables (`SMI_TEST_*` settings).
    pub async fn control_with(
        policy: &Path,
        state: &Path,
        ttl: Duration,
        env: &[(&str, &str)],
    ) -> Process {
        let mut command = tokio::process::Command::new(binary("smi-test-control"));
        command
            .arg(policy)
            .arg(state)
            .arg("127.0.0.1:0")
            .arg(ttl.as_millis().to_string())
            .envs(env.iter().copied());
        Process::spawn(command).await
    }

    /// A meshed `smi-conformance-app` named `name`, enrolled as `identity` (`ns/sa`) with a token
    /// from the control's `state` directory, serving `service` (`ns/name`). `addrs`: the mesh
    /// listener, then the plain control listener.
    pub async fn app(
        control: SocketAddr,
        state: &Path,
        name: &str,
        identity: &str,
        service: &str,
    ) -> Process {
        let mut command = tokio::process::Command::new(binary("smi-conformance-app"));
        command.args([
            "--name",
            name,
            "--service",
            service,
            "--control",
            &control.to_string(),
            "--token",
            &crate::join_token(state, identity, &[service]),
        ]);
        Process::spawn(command).await
    }

    pub async fn spawn(mut command: tokio::process::Command) -> Process {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        let line = tokio::time::timeout(
            READY,
            BufReader::new(child.stdout.take().unwrap())
                .lines()
                .next_line(),
        )
        .await
        .expect("ready within 20 s")
        .unwrap()
        .expect("a ready line");
        let addrs = line
            .split_whitespace()
            .skip(1)
            .map(|a| a.parse().unwrap())
            .collect();
        Process {
            child,
            addrs,
            stderr,
        }
    }

    /// Asserts the process is still running, then stops it; returns what it wrote to stderr.
    pub async fn still_alive_then_stop(mut self, name: &str) -> String {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "{name} exited under malformed input"
        );
        self.child.kill().await.unwrap();
        self.stderr.await.unwrap()
    }
}

/// A binary of this package, which cargo builds beside the integration tests that call this:
/// `target/<profile>/<name>`, one level above the test executable in `deps/`.
fn binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join(name))
        .expect("the test executable is in target/<profile>/deps");
    assert!(path.exists(), "{} is not built", path.display());
    path
}
