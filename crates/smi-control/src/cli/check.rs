//! `smictl check`: ALLOW or DENY, and what decided.

use std::io;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;
use smi_core::ServiceAccount;
use smi_core::policy::{
    Explanation, HttpRequest, PathError, Permit, Protocol, Request, normalize_path,
};

use super::args::{Output, PolicyArgs, header_map, usage};
use super::output::{Out, finish};

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

pub fn run(args: &CheckArgs, out: Out<'_>) -> ExitCode {
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
    let (method, written_path) = match args.http.as_deref() {
        Some([method, path]) => (method.as_str(), path.as_str()),
        _ => ("GET", "/"),
    };
    // The data plane authorizes the normalized path (and answers 400 where there is none): so
    // does this, and it says so when the two differ.
    let (written_only, query) = match written_path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (written_path, None),
    };
    let normalized = match normalize_path(written_only) {
        Ok(p) => p,
        Err(e) if !(args.tcp || args.udp) => {
            let written = print_refused(out, args, method, written_path, &e);
            return finish(out, ExitCode::from(1), written);
        }
        Err(_) => written_only.into(),
    };
    let path = match query {
        Some(q) => format!("{normalized}?{q}"),
        None => normalized.to_string(),
    };
    let path = path.as_str();
    let normalized_from = (path != written_path && !(args.tcp || args.udp)).then_some(written_path);
    let request = if args.tcp {
        Request::tcp(args.port)
    } else if args.udp {
        Request::udp(args.port)
    } else {
        Request::http(args.port, HttpRequest::new(method, path, &headers))
    };
    let described = describe(&request);
    let explanation = snapshot.explain(&to, Some(&from), &request);
    let written = match args.output {
        Output::Text => print_text(out, args, &described, normalized_from, &explanation),
        Output::Json => print_json(out, args, &described, normalized_from, &explanation),
    };
    let code = if explanation.decision.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    finish(out, code, written)
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

/// A path the data plane refuses before authorization (400): DENY, and why.
fn print_refused(
    out: Out<'_>,
    args: &CheckArgs,
    method: &str,
    path: &str,
    error: &PathError,
) -> io::Result<()> {
    match args.output {
        Output::Text => {
            writeln!(
                out,
                "DENY {} -> {}: HTTP {method} {path}",
                args.from, args.to
            )?;
            writeln!(
                out,
                "  refused before authorization (400): the path cannot be normalized: {error}"
            )
        }
        Output::Json => writeln!(
            out,
            "{}",
            json!({
                "decision": "deny",
                "from": args.from.to_string(),
                "to": args.to.to_string(),
                "request": format!("HTTP {method} {path}"),
                "reason": "invalid_request",
                "message": format!("the path cannot be normalized: {error}"),
                "targets": [],
            })
        ),
    }
}

fn print_text(
    out: Out<'_>,
    args: &CheckArgs,
    request: &str,
    normalized_from: Option<&str>,
    e: &Explanation<'_>,
) -> io::Result<()> {
    let verdict = if e.decision.is_ok() { "ALLOW" } else { "DENY" };
    writeln!(out, "{verdict} {} -> {}: {request}", args.from, args.to)?;
    if let Some(written) = normalized_from {
        writeln!(
            out,
            "  path normalized from {written} (as the data plane does: escapes of unreserved characters decoded, repeated slashes merged, dot segments removed)"
        )?;
    }
    match &e.decision {
        Ok(permit) => writeln!(out, "  allowed by {permit}")?,
        Err(denied) => {
            writeln!(out, "  denied: {denied}")?;
            for (target, miss) in &e.misses {
                writeln!(
                    out,
                    "  TrafficTarget {}/{}: {miss}",
                    target.namespace, target.name
                )?;
            }
        }
    }
    Ok(())
}

fn print_json(
    out: Out<'_>,
    args: &CheckArgs,
    request: &str,
    normalized_from: Option<&str>,
    e: &Explanation<'_>,
) -> io::Result<()> {
    let mut body = match &e.decision {
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
    if let Some(written) = normalized_from {
        body["normalized_from"] = json!(written);
    }
    writeln!(out, "{body}")
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
