//! Real processes for end-to-end tests: the control service (`smi-test-control`) and meshed
//! apps (`smi-conformance-app`), each printing `ready <addr> <addr>` once serving. Both are
//! binaries of the `smi-tests` package, which cargo builds beside its integration tests: they
//! are found next to the running test executable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::token::join_token;

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
    /// The control service (`smi-test-control`) on `listen`; workload certificates live `ttl`;
    /// `env` holds its `SMI_TEST_*` settings. `addrs`: the API, then the admin server.
    pub async fn control(
        policy: &Path,
        state: &Path,
        listen: SocketAddr,
        ttl: Duration,
        env: &[(&str, &str)],
    ) -> Process {
        let mut command = tokio::process::Command::new(binary("smi-test-control"));
        command
            .arg(policy)
            .arg(state)
            .arg(listen.to_string())
            .arg(ttl.as_millis().to_string())
            .envs(env.iter().copied());
        Process::spawn(command).await
    }

    /// A meshed `smi-conformance-app` named `name`, enrolled as `identity` (`ns/sa`) with a token
    /// from the control's `state` directory, serving `services` (`ns/name` each). `addrs`: the
    /// mesh listener, then the plain control listener.
    pub async fn app(
        control: SocketAddr,
        state: &Path,
        name: &str,
        identity: &str,
        services: &[&str],
    ) -> Process {
        let mut command = tokio::process::Command::new(binary("smi-conformance-app"));
        command.args([
            "--name",
            name,
            "--control",
            &control.to_string(),
            "--token",
            &join_token(state, identity, services),
        ]);
        for service in services {
            command.args(["--service", service]);
        }
        Process::spawn(command).await
    }

    /// Runs `command` and waits for its ready line.
    pub async fn spawn(mut command: tokio::process::Command) -> Process {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        let stdout = child.stdout.take().expect("stdout is piped");
        let line = tokio::time::timeout(READY, BufReader::new(stdout).lines().next_line())
            .await
            .unwrap_or_else(|_| panic!("{command:?}: no ready line within {READY:?}"))
            .unwrap_or_else(|e| panic!("{command:?}: reading its stdout: {e}"))
            .unwrap_or_else(|| panic!("{command:?}: exited without a ready line"));
        assert!(line.starts_with("ready "), "{command:?}: {line}");
        let addrs = line
            .split_whitespace()
            .skip(1)
            .map(|a| {
                a.parse()
                    .unwrap_or_else(|e| panic!("{command:?}: {a:?} in its ready line: {e}"))
            })
            .collect();
        Process {
            child,
            addrs,
            stderr,
        }
    }

    /// Kills the process (SIGKILL) and waits for it to exit.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("killing a child process");
    }

    /// Asserts the process is still running, then stops it; returns what it wrote to stderr.
    pub async fn still_alive_then_stop(mut self, name: &str) -> String {
        let exited = self
            .child
            .try_wait()
            .expect("the status of a child process");
        assert!(exited.is_none(), "{name} exited: {exited:?}");
        self.kill().await;
        self.stderr.await.expect("the stderr reader")
    }
}

/// A binary of the `smi-tests` package, which cargo builds beside the integration tests that
/// call this: `target/<profile>/<name>`, one level above the test executable in `deps/`.
pub(crate) fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join(name))
        .expect("the test executable is in target/<profile>/deps");
    assert!(path.exists(), "{} is not built", path.display());
    path
}
