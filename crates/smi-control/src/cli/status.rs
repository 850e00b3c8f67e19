//! `smictl status`: a readable summary of a running control service, from its admin API.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Args;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::args::usage;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The control service's admin address.
    #[arg(long, default_value = "127.0.0.1:7080")]
    pub admin: SocketAddr,
    /// Print the raw JSON of /debug/policy and /debug/workloads.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &StatusArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return usage(&format!("starting a runtime: {e}")),
    };
    let fetched = runtime.block_on(async {
        let policy = get_json(args.admin, "/debug/policy").await?;
        let workloads = get_json(args.admin, "/debug/workloads").await?;
        Ok::<_, String>((policy, workloads))
    });
    let (policy, workloads) = match fetched {
        Ok(both) => both,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({"policy": policy, "workloads": workloads})
        );
    } else {
        print_summary(&policy, &workloads);
    }
    let healthy = policy["status"]["errors"]
        .as_array()
        .is_none_or(Vec::is_empty);
    if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print_summary(policy: &Value, workloads: &Value) {
    let status = &policy["status"];
    let count = |key: &str| policy["resources"][key].as_array().map_or(0, Vec::len);
    println!(
        "policy version {}: {} TrafficTarget(s), {} HTTPRouteGroup(s), {} TCP/UDP route(s), {} TrafficSplit(s){}",
        policy["version"],
        count("traffic_targets"),
        count("http_route_groups"),
        count("l4_routes"),
        count("traffic_splits"),
        if policy["permissive"] == Value::Bool(true) {
            ", permissive"
        } else {
            ""
        }
    );
    let errors = status["errors"].as_array().cloned().unwrap_or_default();
    if errors.is_empty() {
        println!("policy directory: healthy");
    } else {
        println!(
            "policy directory: {} error(s); the last good policy keeps serving:",
            errors.len()
        );
        for e in &errors {
            println!("  {}", e.as_str().unwrap_or_default());
        }
    }
    for w in status["warnings"].as_array().into_iter().flatten() {
        println!("  warning: {}", w.as_str().unwrap_or_default());
    }
    let list = workloads["workloads"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    println!("workloads connected: {}", list.len());
    for w in &list {
        let rejected = w["rejected"]
            .as_str()
            .map(|r| format!("  REJECTED: {r}"))
            .unwrap_or_default();
        println!(
            "  {} {}  sent v{} acked v{}  cert expires {}{}",
            w["identity"].as_str().unwrap_or_default(),
            w["workload"].as_str().unwrap_or_default(),
            w["sent_version"],
            w["acked_version"],
            w["certificate_expires_unix"],
            rejected
        );
    }
}

async fn get_json(addr: SocketAddr, path: &str) -> Result<Value, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot reach the admin API at {addr}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    tokio::spawn(conn);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("{addr}{path}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{addr}{path}: HTTP {}", response.status()));
    }
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| format!("{addr}{path}: {e}"))
}
