//! `smictl status`: a readable summary of a running control service, from its admin API.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use super::admin_api::get_json;
use super::args::usage;
use super::escape::{escape, escape_json};
use super::output::{Out, diag, finish};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The control service's admin address.
    #[arg(long, default_value = "127.0.0.1:7080")]
    pub admin: SocketAddr,
    /// Print the raw JSON of /debug/policy and /debug/workloads.
    #[arg(long)]
    pub json: bool,
    /// A file holding the admin API's bearer token (when the control runs with
    /// --admin-token-file); without it, the token is taken from $SMI_ADMIN_TOKEN if set.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
}

pub fn run(args: &StatusArgs, out: Out<'_>) -> ExitCode {
    let token = match admin_token(args) {
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
    let fetched = runtime.block_on(async {
        let token = token.as_deref();
        let policy = get_json(args.admin, "/debug/policy", token).await?;
        let workloads = get_json(args.admin, "/debug/workloads", token).await?;
        Ok::<_, String>((policy, workloads))
    });
    let (policy, workloads) = match fetched {
        Ok(both) => both,
        Err(e) => {
            diag!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let written = if args.json {
        let both = serde_json::json!({"policy": policy, "workloads": workloads}).to_string();
        writeln!(out, "{}", escape_json(&both))
    } else {
        print_summary(out, &policy, &workloads)
    };
    let healthy = policy["status"]["errors"]
        .as_array()
        .is_none_or(Vec::is_empty);
    let code = if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    finish(out, code, written)
}

/// The bearer token for the admin API: `--token-file`, else `$SMI_ADMIN_TOKEN`, else none.
fn admin_token(args: &StatusArgs) -> Result<Option<String>, String> {
    super::admin_api::admin_token(args.token_file.as_deref())
}

/// The text summary. Workload-supplied strings (identities, names, rejection reasons) go
/// through [`escape`]: a workload must not be able to forge lines on the operator's terminal.
fn print_summary(out: Out<'_>, policy: &Value, workloads: &Value) -> io::Result<()> {
    let status = &policy["status"];
    let count = |key: &str| policy["resources"][key].as_array().map_or(0, Vec::len);
    writeln!(
        out,
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
    )?;
    let errors = status["errors"].as_array().cloned().unwrap_or_default();
    let failing = status["failing_files"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if errors.is_empty() {
        writeln!(out, "policy directory: healthy")?;
    } else if !failing.is_empty() {
        writeln!(
            out,
            "policy directory: {} file(s) failing; every other file applies:",
            failing.len()
        )?;
        for f in &failing {
            let serving = match f["serving"].as_str() {
                Some("last_good") => "its last good resources keep serving",
                _ => "it contributes nothing",
            };
            let file = escape(f["file"].as_str().unwrap_or_default());
            writeln!(out, "  {file}: {serving}")?;
            for e in f["errors"].as_array().into_iter().flatten() {
                writeln!(out, "    {}", escape(e.as_str().unwrap_or_default()))?;
            }
        }
    } else {
        // A control service older than per-file loading: one error blocks the whole directory.
        writeln!(
            out,
            "policy directory: {} error(s); the last good policy keeps serving:",
            errors.len()
        )?;
        for e in &errors {
            writeln!(out, "  {}", e.as_str().unwrap_or_default())?;
        }
    }
    for w in status["warnings"].as_array().into_iter().flatten() {
        writeln!(out, "  warning: {}", w.as_str().unwrap_or_default())?;
    }
    let list = workloads["workloads"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    writeln!(out, "workloads connected: {}", list.len())?;
    for w in &list {
        let rejected = w["rejected"]
            .as_str()
            .map(|r| format!("  REJECTED: {}", escape(r)))
            .unwrap_or_default();
        // The Kubernetes names its certificate carries, when it has them.
        let names = match (w["names"]["workload"].as_str(), w["names"]["pod"].as_str()) {
            (Some(workload), Some(pod)) => {
                format!("  deployment {} pod {}", escape(workload), escape(pod))
            }
            _ => String::new(),
        };
        writeln!(
            out,
            "  {} {}{names}  sent v{} acked v{}  cert expires {}{}",
            escape(w["identity"].as_str().unwrap_or_default()),
            escape(w["workload"].as_str().unwrap_or_default()),
            w["sent_version"],
            w["acked_version"],
            w["certificate_expires_unix"],
            rejected
        )?;
    }
    let failing = workloads["failing_watches"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !failing.is_empty() {
        writeln!(
            out,
            "watches failing: {} workload(s) whose streams end before they acknowledge:",
            failing.len()
        )?;
        for f in &failing {
            writeln!(
                out,
                "  {} {}  {} stream(s) in a row  sent v{} acked v{}",
                escape(f["identity"].as_str().unwrap_or_default()),
                escape(f["workload"].as_str().unwrap_or_default()),
                f["failed_streams"],
                f["sent_version"],
                f["acked_version"],
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_supplied_text_is_shown_escaped() {
        let policy = serde_json::json!({"version": 3, "status": {"errors": []}, "resources": {}});
        let workloads = serde_json::json!({"workloads": [{
            "identity": "bookstore/bookstore\u{202e}1v",
            "workload": "\x1b[31mbookstore-v1\rforged",
            "sent_version": 3,
            "acked_version": 2,
            "certificate_expires_unix": 0,
            "rejected": "bad\x1b]0;title\x07",
        }]});
        let mut out = Vec::new();
        print_summary(&mut out, &policy, &workloads).unwrap();
        let text = String::from_utf8(out).unwrap();
        let raw = |c: char| c != '\n' && (c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c));
        assert!(!text.chars().any(raw), "{text:?}");
        assert!(
            text.contains(
                "  bookstore/bookstore\\u{202e}1v \\x1b[31mbookstore-v1\\rforged  sent v3"
            ),
            "{text}"
        );
        assert!(text.contains("REJECTED: bad\\x1b]0;title\\x07\n"), "{text}");
    }

    #[test]
    fn a_workloads_names_are_shown_when_its_certificate_has_them() {
        let policy = serde_json::json!({"version": 3, "status": {"errors": []}, "resources": {}});
        let workloads = serde_json::json!({"workloads": [{
            "identity": "spiffe://cluster.local/ns/shop/sa/web",
            "workload": "host-1",
            "names": {"workload": "web", "pod": "web-5d8f7c9b4-x2x7q\u{1b}[2J"},
            "sent_version": 3,
            "acked_version": 3,
            "certificate_expires_unix": 0,
        }]});
        let mut out = Vec::new();
        print_summary(&mut out, &policy, &workloads).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(
                "  spiffe://cluster.local/ns/shop/sa/web host-1  deployment web pod web-5d8f7c9b4-x2x7q\\x1b[2J  sent v3"
            ),
            "{text}"
        );
    }

    #[test]
    fn failing_watches_are_listed_escaped() {
        let policy = serde_json::json!({"version": 3, "status": {"errors": []}, "resources": {}});
        let workloads = serde_json::json!({"workloads": [], "failing_watches": [{
            "identity": "spiffe://cluster.local/ns/shop/sa/web",
            "workload": "web\x1b[2J",
            "failed_streams": 7,
            "last_failure_unix": 1,
            "sent_version": 9,
            "acked_version": 4,
        }]});
        let mut out = Vec::new();
        print_summary(&mut out, &policy, &workloads).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("watches failing: 1 workload(s)"), "{text}");
        assert!(
            text.contains("web\\x1b[2J  7 stream(s) in a row  sent v9 acked v4"),
            "{text}"
        );
    }

    #[test]
    fn the_token_file_is_trimmed_and_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let args = |path: &std::path::Path| StatusArgs {
            admin: SocketAddr::from(([127, 0, 0, 1], 7080)),
            json: false,
            token_file: Some(path.to_owned()),
        };
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(admin_token(&args(&path)), Ok(Some("s3cret".to_owned())));
        std::fs::write(&path, " \n").unwrap();
        let err = admin_token(&args(&path)).unwrap_err();
        assert!(
            err.contains("is empty") && err.contains("--token-file"),
            "{err}"
        );
        let err = admin_token(&args(&dir.path().join("missing"))).unwrap_err();
        assert!(err.contains("missing"), "{err}");
    }

    #[test]
    fn failing_policy_files_are_listed_with_what_serves_in_their_place() {
        let policy = serde_json::json!({"version": 4, "resources": {}, "status": {
            "errors": ["p/a.yaml:doc 1: malformed YAML", "p/b.yaml: not UTF-8 text"],
            "failing_files": [
                {"file": "p/a.yaml", "errors": ["p/a.yaml:doc 1: malformed YAML"], "serving": "last_good"},
                {"file": "p/b.yaml", "errors": ["p/b.yaml: not UTF-8 text"], "serving": "nothing"},
            ],
        }});
        let mut out = Vec::new();
        print_summary(&mut out, &policy, &serde_json::json!({"workloads": []})).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(
                "policy directory: 2 file(s) failing; every other file applies:\n\
                 \x20 p/a.yaml: its last good resources keep serving\n\
                 \x20   p/a.yaml:doc 1: malformed YAML\n\
                 \x20 p/b.yaml: it contributes nothing\n\
                 \x20   p/b.yaml: not UTF-8 text\n"
            ),
            "{text}"
        );
    }
}
