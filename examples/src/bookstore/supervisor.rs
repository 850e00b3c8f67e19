//! The demo's parent process: starts the control service and the workloads (this binary in each
//! role), gives each a join token, shows the clients' counts, and stops everything at the end.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smi_control::ca::CaStore;
use smi_control::enroll::JoinTokens;
use smi_core::{DEFAULT_TRUST_DOMAIN, ServiceRef};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use super::stats::{ClientReport, Summary};
use super::traffic;
use super::{READY, STATS, WORKLOADS};

type Error = Box<dyn std::error::Error + Send + Sync>;

const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct Options {
    pub policy_dir: PathBuf,
    /// Run this long, then stop; `None` runs until Ctrl-C.
    pub duration: Option<Duration>,
    /// Print only the JSON summary at the end (no live table).
    pub json: bool,
}

struct Process {
    role: &'static str,
    child: Child,
}

/// Starts `role`, waits for its `ready` line, and returns the process and its remaining output.
async fn spawn(
    role: &'static str,
    args: &[&std::ffi::OsStr],
    env: &[(&str, &str)],
) -> Result<(Process, Vec<String>, Lines<BufReader<ChildStdout>>), Error> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg("--role")
        .arg(role)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(START_TIMEOUT, lines.next_line())
        .await
        .map_err(|_| format!("{role} did not start within {START_TIMEOUT:?}"))??
        .ok_or_else(|| format!("{role} exited before it was ready (see its log above)"))?;
    let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    if words.first().map(String::as_str) != Some(READY) {
        return Err(format!("{role}: unexpected first line {line:?}").into());
    }
    Ok((Process { role, child }, words[1..].to_vec(), lines))
}

pub async fn run(options: Options) -> Result<Summary, Error> {
    let state = tempfile::tempdir()?;
    let (control, addrs, _) = spawn(
        "control",
        &[
            "--policy-dir".as_ref(),
            options.policy_dir.as_os_str(),
            "--state-dir".as_ref(),
            state.path().as_os_str(),
        ],
        &[],
    )
    .await?;
    let api = addrs.first().ok_or("control: no address")?.clone();
    let admin: SocketAddr = addrs.get(1).ok_or("control: no admin address")?.parse()?;
    if !options.json {
        println!("control service: gRPC {api}, admin http://{admin}");
        println!("beside it: smictl top deployments -n bookstore --admin {admin} --watch");
    }

    let store = CaStore::new(state.path());
    let ca = store.load(DEFAULT_TRUST_DOMAIN)?;
    let tokens = JoinTokens::new(&store.token_key()?, DEFAULT_TRUST_DOMAIN);
    let reports: Arc<Mutex<BTreeMap<&'static str, ClientReport>>> = Arc::default();
    let mut processes = vec![control];
    let mut readers = Vec::new();
    for workload in &WORKLOADS {
        let serves: Vec<ServiceRef> = workload
            .serves
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()?;
        let token = tokens.create(
            &workload.identity.parse()?,
            &serves,
            Duration::from_secs(3600),
            ca.bundle(),
        );
        // Named as Kubernetes would name a Deployment's only pod, for the metrics.
        let pod = format!("{}-0", workload.role);
        let namespace = workload.identity.split('/').next().unwrap_or_default();
        let (process, _, mut lines) = spawn(
            workload.role,
            &[],
            &[
                ("SMI_CONTROL_ADDR", api.as_str()),
                ("SMI_TOKEN", token.as_str()),
                ("SMI_WORKLOAD_NAME", workload.role),
                ("SMI_POD_NAME", pod.as_str()),
                ("SMI_NAMESPACE", namespace),
                // Reports every second (default 5 s), so the TrafficMetrics table fills at once.
                ("SMI_REPORT_INTERVAL", "1"),
            ],
        )
        .await?;
        if !workload.calls.is_empty() && workload.serves.is_empty() {
            let reports = reports.clone();
            let role = workload.role;
            reports
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(role, ClientReport::default());
            readers.push(tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(json) = line.strip_prefix(STATS)
                        && let Ok(report) = serde_json::from_str::<ClientReport>(json)
                    {
                        reports
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(role, report);
                    }
                }
            }));
        }
        processes.push(process);
    }

    let summary = || {
        let reports = reports.lock().unwrap_or_else(|e| e.into_inner());
        Summary::from_reports(reports.iter().map(|(k, v)| (*k, v)))
    };
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let terminal = std::io::stdout().is_terminal();
    loop {
        let remaining = options
            .duration
            .map(|d| d.saturating_sub(started.elapsed()));
        if remaining == Some(Duration::ZERO) {
            break;
        }
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        if !options.json {
            if terminal {
                print!("\x1b[2J\x1b[H");
            }
            println!(
                "smi-mesh bookstore demo, {:.0} s (Ctrl-C to stop; edit {} to shift traffic)\n",
                started.elapsed().as_secs_f64(),
                options.policy_dir.join("bookstore-split.yaml").display()
            );
            let mut now = summary();
            now.traffic = traffic::fetch(admin).await;
            println!("{}", now.table());
            let reports = reports.lock().unwrap_or_else(|e| e.into_inner());
            for (client, report) in reports.iter() {
                if let Some(error) = &report.last_error {
                    println!("{client} last failure: {error}");
                }
            }
        }
    }

    // What the control says, while every workload still runs.
    let traffic = traffic::fetch(admin).await;

    // Clients first, and wait for their last counts (their output ends when they exit), so that
    // no purchase is cut off by a server stopping; then the servers and the control.
    for process in processes.iter_mut() {
        if super::workload(process.role).is_some_and(|w| w.serves.is_empty()) {
            drop(process.child.stdin.take());
        }
    }
    for reader in readers {
        let _ = tokio::time::timeout(STOP_GRACE, reader).await;
    }
    for process in processes.iter_mut().rev() {
        drop(process.child.stdin.take());
    }
    for mut process in processes {
        if tokio::time::timeout(STOP_GRACE, process.child.wait())
            .await
            .is_err()
        {
            tracing::warn!(role = process.role, "did not stop in time; killing it");
            let _ = process.child.kill().await;
        }
    }
    Ok(Summary {
        traffic,
        ..summary()
    })
}
