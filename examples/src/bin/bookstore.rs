//! The bookstore demo: `cargo run --release -p smi-examples --bin bookstore [-- --duration S --json]`.
//! See `smi_examples::bookstore`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use smi_examples::bookstore::{self, roles, supervisor};

#[derive(Debug, Parser)]
#[command(
    name = "bookstore",
    about = "The smi-mesh bookstore demo: a control service and five meshed workloads on 127.0.0.1"
)]
struct Cli {
    /// Run for this many seconds, then print the summary and stop (default: until Ctrl-C).
    #[arg(long)]
    duration: Option<u64>,
    /// Print only a JSON summary at the end.
    #[arg(long)]
    json: bool,
    /// The SMI policy directory (watched: edit it while the demo runs).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/bookstore/policy"))]
    policy_dir: PathBuf,
    /// Internal: the role of a child process.
    #[arg(long, hide = true)]
    role: Option<String>,
    /// Internal: the control role's state directory.
    #[arg(long, hide = true)]
    state_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("bookstore: {e}");
            return ExitCode::FAILURE;
        }
    };
    let role = cli.role.clone();
    let result = runtime.block_on(async move {
        match role.as_deref() {
            None => {
                let options = supervisor::Options {
                    policy_dir: cli.policy_dir,
                    duration: cli.duration.map(Duration::from_secs),
                    json: cli.json,
                };
                let json = options.json;
                let summary = supervisor::run(options).await?;
                if json {
                    println!("{}", serde_json::to_string(&summary)?);
                } else {
                    println!("{}", summary.table());
                }
                Ok(())
            }
            Some("control") => {
                let state = cli.state_dir.ok_or("--state-dir is required")?;
                roles::control(cli.policy_dir, state).await
            }
            Some(role) => match bookstore::workload(role) {
                Some(w) if w.serves.is_empty() => roles::client(w).await,
                Some(w) => roles::server(w).await,
                None => Err(format!("unknown role {role:?}").into()),
            },
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "bookstore{}: {e}",
                cli.role.map(|r| format!(" ({r})")).unwrap_or_default()
            );
            ExitCode::FAILURE
        }
    }
}
