//! `smictl check`: ALLOW or DENY, and what decided.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;
use smi_core::ServiceAccount;
use smi_core::policy::{Explanation, HttpRequest, Permit, Protocol, Request};

use super::args::{Output, PolicyArgs, header_map, usage};

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Source ServiceAccount, `namespace/name`.
    #[arg(long, value_name = "NS/SA")]
    pub from: ServiceAccount,
    /// Destination ServiceAccount, `namespace/name`.
    #[arg(long, value_name = "NS/SA")]
    pub to: ServiceAccount,
    /// Destination port; without it, port restrictions do not apply.
    #[arg(long)]
    pub port: Option<u16>,
    /// An HTTP request (the default is `GET /`).
    #[arg(long, num_args = 2, value_names = ["METHOD", "PATH"], conflicts_with_all = ["tcp", "udp"])]
    pub http: Option<Vec<String>>,
    /// A TCP connection instead of an HTTP request.
    #[arg(long, conflicts_with = "udp")]
    pub tcp: bool,
    /// UDP traffic instead of an HTTP request.
    #[arg(long)]
    pub udp: bool,
    /// A request header, `'Name: value'`; repeat for more.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Allow everything, as a mesh in permissive mode would.
    #[arg(long)]
    pub permissive: bool,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

pub fn run(args: &CheckArgs) -> ExitCode {
    let headers = match header_map(&args.headers) {
        Ok(h) => h,
        Err(e) => return usage(&e),
    };
    let snapshot = match args.policy.snapshot(args.permissive) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let td = &args.policy.trust_domain;
    let (from, to) = (args.from.spiffe_id(td), args.to.spiffe_id(td));
    let (method, path) = match args.http.as_deref() {
        Some([method, path]) => (method.as_str(), path.as_str()),
        _ => ("GET", "/"),
    };
    let request = if args.tcp {
        Request::tcp(args.port)
    } else if args.udp {
        Request::udp(args.port)
    } else {
        Request::http(args.port, HttpRequest::new(method, path, &headers))
    };
    let described = describe(&request);
    let explanation = snapshot.explain(&to, Some(&from), &request);
    match args.output {
        Output::Text => print_text(args, &described, &explanation),
        Output::Json => print_json(args, &described, &explanation),
    }
    if explanation.decision.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn describe(request: &Request<'_>) -> String {
    let what = match &request.protocol {
        Protocol::Http(h) => format!("HTTP {} {}", h.method, h.path),
        Protocol::Tcp => "TCP".to_owned(),
        Protocol::Udp => "UDP".to_owned(),
    };
    match request.port {
        Some(p) => format!("{what} port {p}"),
        None => format!("{what} (any port)"),
    }
}

fn print_text(args: &CheckArgs, request: &str, e: &Explanation<'_>) {
    let verdict = if e.decision.is_ok() { "ALLOW" } else { "DENY" };
    println!("{verdict} {} -> {}: {request}", args.from, args.to);
    match &e.decision {
        Ok(permit) => println!("  allowed by {permit}"),
        Err(denied) => {
            println!("  denied: {denied}");
            for (target, miss) in &e.misses {
                println!(
                    "  TrafficTarget {}/{}: {miss}",
                    target.namespace, target.name
                );
            }
        }
    }
}

fn print_json(args: &CheckArgs, request: &str, e: &Explanation<'_>) {
    let body = match &e.decision {
        Ok(permit) => json!({
            "decision": "allow",
            "from": args.from.to_string(),
            "to": args.to.to_string(),
            "request": request,
            "permit": permit_json(permit),
        }),
        Err(denied) => json!({
            "decision": "deny",
            "from": args.from.to_string(),
            "to": args.to.to_string(),
            "request": request,
            "reason": denied.code(),
            "message": denied.to_string(),
            "targets": e.misses.iter().map(|(t, miss)| json!({
                "traffic_target": format!("{}/{}", t.namespace, t.name),
                "why_not": miss.to_string(),
            })).collect::<Vec<_>>(),
        }),
    };
    println!("{body}");
}

fn permit_json(permit: &Permit<'_>) -> serde_json::Value {
    match permit {
        Permit::Permissive => json!({"permissive": true}),
        Permit::Granted {
            target,
            rule_index,
            rule,
            matched,
            ..
        } => json!({
            "traffic_target": format!("{}/{}", target.namespace, target.name),
            "source": target.origin.to_string(),
            "rule_index": rule_index,
            "rule_kind": rule.kind.kind_name(),
            "rule_name": rule.name,
            "match": matched,
        }),
    }
}
