//! Telemetry through a real control service: Report calls with a real workload certificate, the
//! TrafficMetrics API on the admin listener (behind its token), and `smictl top` reading it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use smi_control::telemetry::api_types::{TrafficMetrics, TrafficMetricsList};
use smi_core::proto::v1;
use smi_core::telemetry::LatencySketch;

use common::smictl_command;
use common::telemetry::{Control, WEB_POD, control};

const API: &str = "/apis/metrics.smi-spec.io/v1alpha1";

fn sketch_of(millis: &[u64]) -> (Vec<u32>, Vec<u64>) {
    let mut s = LatencySketch::new();
    for ms in millis {
        s.record(Duration::from_millis(*ms));
    }
    s.bins().iter().map(|&(b, c)| (u32::from(b), c)).unzip()
}

fn edge(
    direction: v1::Direction,
    peer: (&str, &str),
    service: &str,
    backend: &str,
    counts: (u64, u64),
    millis: &[u64],
) -> v1::EdgeStats {
    let (bins, latency_counts) = sketch_of(millis);
    let (ns, workload) = peer;
    v1::EdgeStats {
        direction: direction as i32,
        peer_identity: format!("spiffe://cluster.local/ns/{ns}/sa/{workload}"),
        peer_workload: workload.into(),
        peer_pod: format!("{workload}-0"),
        service: service.into(),
        backend: backend.into(),
        route: "r".into(),
        success: counts.0,
        failure: counts.1,
        denied: 0,
        latency_bins: bins,
        latency_counts,
    }
}

fn report(sequence: u64, edges: Vec<v1::EdgeStats>) -> v1::ReportRequest {
    v1::ReportRequest {
        instance_id: "c0ffee".into(),
        sequence,
        interval_millis: 5_000,
        names: Some(v1::WorkloadNames {
            workload: "web".into(),
            pod: WEB_POD.into(),
        }),
        edges,
    }
}

fn web_edges() -> Vec<v1::EdgeStats> {
    use v1::Direction::{Inbound, Outbound};
    vec![
        edge(
            Inbound,
            ("edge", "gateway"),
            "shop/web",
            "",
            (90, 10),
            &[2; 100],
        ),
        edge(
            Outbound,
            ("shop", "db-v1"),
            "shop/db",
            "shop/db-v1",
            (80, 0),
            &[5; 80],
        ),
        edge(
            Outbound,
            ("shop", "db-v2"),
            "shop/db",
            "shop/db-v2",
            (15, 5),
            &[9; 20],
        ),
    ]
}

/// `smictl top <args> --admin <addr>` with the control's token: exit code, stdout, stderr.
fn top(control: &Control, args: &[&str], token: bool) -> (Option<i32>, String, String) {
    let mut command = top_command(control, args, token);
    let out = command.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn top_command(control: &Control, args: &[&str], token: bool) -> Command {
    let mut command = smictl_command();
    command
        .arg("top")
        .args(args)
        .args(["--admin", &control.running.admin_addr.to_string()])
        .env_remove("SMI_ADMIN_TOKEN");
    if token {
        command.arg("--token-file").arg(&control.token_file);
    }
    command
}

/// A table's rows as cells, by its header's column names.
fn rows(table: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    lines
        .map(|l| {
            header
                .iter()
                .map(|h| (*h).to_owned())
                .zip(l.split_whitespace().map(str::to_owned))
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_over_the_api_reach_the_traffic_metrics_api_and_smictl_top() {
    let control = control().await;
    let web = control
        .certify(None, &control.token("shop/web"), Some(("web", WEB_POD)))
        .await
        .unwrap();
    let mut client = control.channel(Some(web)).await;
    let counted = |r: v1::ReportResponse| r.counted;
    let first = client
        .report(report(1, web_edges()))
        .await
        .unwrap()
        .into_inner();
    assert!(counted(first));
    let retry = client
        .report(report(1, web_edges()))
        .await
        .unwrap()
        .into_inner();
    assert!(!counted(retry), "a retry counts once");

    // Refusals: no certificate; a bad field, named.
    let mut anonymous = control.channel(None).await;
    let refused = anonymous.report(report(2, vec![])).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    let mut bad = web_edges();
    bad[2].peer_identity = "nobody".into();
    let refused = client.report(report(2, bad)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().starts_with("edges[2].peer_identity: "),
        "{}",
        refused.message()
    );
    let many = vec![web_edges().remove(0); 1_001];
    let refused = client.report(report(2, many)).await.unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );

    // The API.
    let (status, web) = control
        .admin(&format!("{API}/namespaces/shop/deployments/web"))
        .await;
    assert_eq!(status, 200, "{web}");
    let web: TrafficMetrics = serde_json::from_value(web).unwrap();
    assert_eq!(web.number("success_count"), Some(90.0));
    assert_eq!(web.number("failure_count"), Some(10.0));
    let p50 = web.number("p50_response_latency").unwrap();
    assert!((1.98..=2.02).contains(&p50), "{p50}");
    let (_, split) = control
        .admin(&format!("{API}/namespaces/shop/trafficsplits/db-split"))
        .await;
    let split: TrafficMetricsList = serde_json::from_value(split).unwrap();
    let backends: Vec<(String, u64, Option<f64>)> = split
        .items
        .iter()
        .map(|i| {
            let b = i.backend.clone().unwrap();
            (b.name, b.weight, i.number("success_count"))
        })
        .collect();
    assert_eq!(
        backends,
        [
            ("db-v1".into(), 90, Some(80.0)),
            ("db-v2".into(), 10, Some(15.0))
        ]
    );
    let (status, body) = control
        .admin(&format!("{API}/namespaces/shop/services"))
        .await;
    assert_eq!(
        (status, body),
        (
            404,
            serde_json::json!({"error": "Unsupported resource: services"})
        )
    );
    let metrics = control.admin("/metrics").await;
    assert_eq!(metrics.0, 200);

    // smictl top, a separate process reading the live API.
    let control = Arc::new(control);
    let c = control.clone();
    let smictl = move |args: Vec<&'static str>, token| {
        let c = c.clone();
        tokio::task::spawn_blocking(move || top(&c, &args, token))
    };
    let (code, _, err) = smictl(vec!["deployments", "-n", "shop"], false)
        .await
        .unwrap();
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("401"), "{err}");

    let (code, out, err) = smictl(vec!["deployments", "-n", "shop"], true)
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{err}");
    let table = rows(&out);
    assert_eq!(table.len(), 1, "{out}");
    assert_eq!(table[0]["NAME"], "web");
    assert_eq!(table[0]["SUCCESS"], "90.00%");
    assert_eq!(table[0]["RPS"], "3.3", "100 requests in 30 s");
    let p50: f64 = table[0]["LATENCY_P50"]
        .trim_end_matches("ms")
        .parse()
        .unwrap();
    assert!((1.98..=2.02).contains(&p50), "within 1% of 2 ms: {out}");

    let (code, out, err) = smictl(vec!["trafficsplits", "-n", "shop"], true)
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{err}");
    let table = rows(&out);
    let cells: Vec<[&str; 4]> = table
        .iter()
        .map(|r| [&r["BACKEND"], &r["WEIGHT"], &r["SHARE"], &r["SUCCESS"]].map(String::as_str))
        .collect();
    assert_eq!(
        cells,
        [
            ["db-v1", "90.0%", "80.0%", "100.00%"],
            ["db-v2", "10.0%", "20.0%", "75.00%"]
        ],
        "{out}"
    );

    let (code, out, err) = smictl(vec!["edges", "deployment/web", "-n", "shop"], true)
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{err}");
    let peers: Vec<(String, String)> = rows(&out)
        .into_iter()
        .map(|r| (r["DIRECTION"].clone(), r["PEER"].clone()))
        .collect();
    assert_eq!(
        peers,
        [
            ("to".into(), "deployment/db-v1".into()),
            ("to".into(), "deployment/db-v2".into()),
            ("from".into(), "deployment/gateway".into())
        ],
        "{out}"
    );
    let (code, out, _) = smictl(
        vec!["pods", "-n", "shop", "-o", "json", "--window", "1m"],
        true,
    )
    .await
    .unwrap();
    assert_eq!(code, Some(0));
    let list: TrafficMetricsList = serde_json::from_str(&out).unwrap();
    assert_eq!(list.items[0].resource.name, WEB_POD);
    assert_eq!(list.items[0].window, "1m0s");

    let (code, _, err) = smictl(vec!["deployments", "nope", "-n", "shop"], true)
        .await
        .unwrap();
    assert_eq!(code, Some(1));
    assert!(err.contains("deployments \"nope\" not found"), "{err}");
    let (code, _, err) = smictl(vec!["pods", "web-0"], true).await.unwrap();
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("-n NAMESPACE"), "{err}");

    // --watch redraws until it is stopped.
    let frames = watch_frames(&control, 2);
    assert_eq!(frames, 2);
    drop(smictl);
    match Arc::try_unwrap(control) {
        Ok(control) => control.running.shutdown().await,
        Err(_) => panic!("the control is still shared"),
    }
}

/// Runs `smictl top deployments --watch` until it has drawn `n` tables (at most 20 s), then
/// stops it; returns how many it drew.
fn watch_frames(control: &Control, n: usize) -> usize {
    let mut child = top_command(control, &["deployments", "-n", "shop", "--watch"], true)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("NAME") && tx.send(()).is_err() {
                break;
            }
        }
    });
    let mut frames = 0;
    while frames < n && rx.recv_timeout(Duration::from_secs(20)).is_ok() {
        frames += 1;
    }
    let _ = child.kill();
    let _ = child.wait();
    frames
}
