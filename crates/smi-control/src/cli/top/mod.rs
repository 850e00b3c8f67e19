//! `smictl top`: the TrafficMetrics API of a running control as a table, like
//! `linkerd viz stat`; `--watch` redraws it every 2 s.

mod table;
mod target;

pub use target::TopKind;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::Value;

use super::admin_api::{admin_token, get_json};
use super::args::{Output, usage};
use super::escape::escape_json;
use super::output::{Out, diag, finish};
use crate::telemetry::api_types::{TrafficMetrics, TrafficMetricsList};
use target::Target;

/// How often `--watch` redraws.
pub const WATCH_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Args)]
#[command(after_help = "\
Columns: SUCCESS is the share of answered requests that succeeded (HTTP 5xx and gRPC \
Unknown, DeadlineExceeded, Internal, Unavailable and DataLoss fail; requests the mesh denied \
are not answered); RPS counts every request, denied ones included; LATENCY_* are percentiles of \
the time to the response head. For a TrafficSplit, WEIGHT is each backend's share of the \
split's weights and SHARE its share of the split's requests in the window.

Examples:
  smictl top deployments -n bookstore
  smictl top pods -n bookstore --window 1m
  smictl top trafficsplits bookstore-split -n bookstore --watch
  smictl top edges deployment/bookbuyer -n bookbuyer
  smictl top edges namespace/bookstore -o json")]
pub struct TopArgs {
    /// What to show: deployments, pods, trafficsplits, or the edges of one resource.
    #[arg(value_enum)]
    pub kind: TopKind,
    /// One deployment, pod or TrafficSplit (with -n); for edges, the resource as KIND/NAME:
    /// deployment/NAME or pod/NAME (with -n), or namespace/NAME.
    pub name: Option<String>,
    /// The namespace; without it, every namespace.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// The window the numbers cover, a Go duration (30s, 1m, 5m; at most 1h).
    #[arg(long, default_value = "30s")]
    pub window: String,
    /// Redraw every 2 s until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// `text`: the table; `json`: the API's answer (one line per redraw with --watch).
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// The control service's admin address.
    #[arg(long, default_value = "127.0.0.1:7080")]
    pub admin: SocketAddr,
    /// A file holding the admin API's bearer token (when the control runs with
    /// --admin-token-file); without it, the token is taken from $SMI_ADMIN_TOKEN if set.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
}

pub fn run(args: &TopArgs, out: Out<'_>) -> ExitCode {
    let target = match Target::new(
        args.kind,
        args.name.as_deref(),
        args.namespace.as_deref(),
        &args.window,
    ) {
        Ok(t) => t,
        Err(e) => return usage(&e),
    };
    let token = match admin_token(args.token_file.as_deref()) {
        Ok(t) => t,
        Err(e) => return usage(&e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return usage(&format!("starting a runtime: {e}")),
    };
    // Redraws clear the screen only on a terminal; piped, frames follow each other.
    let clear = args.watch && args.output == Output::Text && std::io::stdout().is_terminal();
    runtime.block_on(async {
        let mut first = true;
        loop {
            let fetched = get_json(args.admin, &target.path, token.as_deref()).await;
            let written = match fetched {
                Ok(answer) => show(out, args, &target, &answer, clear, first),
                Err(e) if !args.watch => {
                    diag!("error: {e}");
                    return ExitCode::FAILURE;
                }
                // Watching, a failure is shown and the next redraw tries again.
                Err(e) => {
                    diag!("error: {e}");
                    Ok(())
                }
            };
            first = false;
            if !args.watch || written.is_err() {
                return finish(out, ExitCode::SUCCESS, written);
            }
            if let Err(e) = out.flush() {
                return finish(out, ExitCode::SUCCESS, Err(e));
            }
            tokio::select! {
                () = tokio::time::sleep(WATCH_EVERY) => {}
                _ = tokio::signal::ctrl_c() => return finish(out, ExitCode::SUCCESS, Ok(())),
            }
        }
    })
}

fn show(
    out: Out<'_>,
    args: &TopArgs,
    target: &Target,
    answer: &Value,
    clear: bool,
    first: bool,
) -> std::io::Result<()> {
    if args.output == Output::Json {
        return writeln!(out, "{}", escape_json(&answer.to_string()));
    }
    if clear {
        write!(out, "\x1b[2J\x1b[H")?;
    } else if !first {
        writeln!(out)?;
    }
    match items(answer) {
        Ok(items) => table::table(target.view, &items).write(out),
        Err(e) => {
            diag!("error: the answer is not TrafficMetrics: {e}");
            Ok(())
        }
    }
}

/// The items of a TrafficMetricsList, or the one TrafficMetrics asked for.
fn items(answer: &Value) -> Result<Vec<TrafficMetrics>, serde_json::Error> {
    if answer["kind"] == "TrafficMetrics" {
        Ok(vec![serde_json::from_value(answer.clone())?])
    } else {
        let list: TrafficMetricsList = serde_json::from_value(answer.clone())?;
        Ok(list.items)
    }
}
