//! Telemetry through a real control service: workload names in certificates (enrollment and
//! renewal over the gRPC API), Report calls with a real workload certificate, the TrafficMetrics
//! API on the admin listener (behind its token), and `smictl top` reading it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::Value;
use smi_control::ca::CaStore;
use smi_control::enroll::JoinTokens;
use smi_control::serve::{Running, ServeConfig, start};
use smi_control::telemetry::api_types::{TrafficMetrics, TrafficMetricsList};
use smi_core::proto::v1::{self, control_client::ControlClient};
use smi_core::telemetry::{LatencySketch, Workload};
use smi_core::{ServiceAccount, ServiceRef};
use smi_tls::{Mtls, OwnCertificate, peer_identity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Channel, Endpoint, Uri};

use common::{smictl_command, write};

const TRUST_DOMAIN: &str = "cluster.local";
const TOKEN: &str = "t0p-s3cret";
const SPLIT: &str = "apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: db-split, namespace: shop}
spec:
  service: db
  backends:
  - {service: db-v1, weight: 90}
  - {service: db-v2, weight: 10}
";
const API: &str = "/apis/metrics.smi-spec.io/v1alpha1";
const WEB_POD: &str = "web-5d8f7c9b4-x2x7q";

struct Control {
    running: Running,
    state: PathBuf,
    token_file: PathBuf,
    _dir: tempfile::TempDir,
}

async fn control() -> Control {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy");
    std::fs::create_dir(&policy).unwrap();
    write(&policy, "split.yaml", SPLIT);
    let token_file = write(dir.path(), "admin.token", TOKEN);
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let state = dir.path().join("state");
    let running = start(ServeConfig {
        policy_dir: policy,
        state_dir: state.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        admin: "127.0.0.1:0".parse().unwrap(),
        admin_token_file: Some(token_file.clone()),
        ..ServeConfig::default()
    })
    .await
    .unwrap();
    Control {
        running,
        state,
        token_file,
        _dir: dir,
    }
}

impl Control {
    fn bundle(&self) -> Vec<CertificateDer<'static>> {
        CaStore::new(&self.state)
            .open_or_init(TRUST_DOMAIN)
            .unwrap()
            .bundle()
            .to_vec()
    }

    /// A join token for `identity` (`ns/name`), signed with the running control's key.
    fn token(&self, identity: &str) -> String {
        let key = CaStore::new(&self.state).token_key().unwrap();
        let identity: ServiceAccount = identity.parse().unwrap();
        let serves: Vec<ServiceRef> = Vec::new();
        JoinTokens::new(&key, TRUST_DOMAIN).create(
            &identity,
            &serves,
            Duration::from_secs(600),
            &self.bundle(),
        )
    }

    /// A gRPC channel over TLS presenting `own` (none: first contact).
    async fn channel(&self, own: Option<OwnCertificate>) -> ControlClient<Channel> {
        let bundle = self.bundle();
        let tls = Mtls::new(bundle.iter().map(|c| c.as_ref()))
            .unwrap()
            .control_client(own, TRUST_DOMAIN)
            .unwrap();
        let tls = Arc::new(tls);
        let addr = self.running.api_addr;
        let connector = tower::service_fn(move |_: Uri| {
            let tls = tls.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let name = ServerName::try_from("localhost").unwrap();
                let stream = tokio_rustls::TlsConnector::from(tls)
                    .connect(name, tcp)
                    .await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        });
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_with_connector(connector)
            .await
            .unwrap();
        ControlClient::new(channel)
    }

    /// Certify with `token` (or, empty, the certificate `own` renews), asking for `names`.
    async fn certify(
        &self,
        own: Option<OwnCertificate>,
        token: &str,
        names: Option<(&str, &str)>,
    ) -> Result<OwnCertificate, tonic::Status> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let csr = CertificateParams::default()
            .serialize_request(&key)
            .unwrap();
        let response = self
            .channel(own)
            .await
            .certify(v1::CertifyRequest {
                csr_der: csr.der().to_vec(),
                token: token.to_owned(),
                names: names.map(|(workload, pod)| v1::WorkloadNames {
                    workload: workload.into(),
                    pod: pod.into(),
                }),
            })
            .await?
            .into_inner();
        Ok(OwnCertificate {
            chain: response
                .certificate_chain_der
                .into_iter()
                .map(CertificateDer::from)
                .collect(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// `GET path` on the admin API with its token: status and JSON body.
    async fn admin(&self, path: &str) -> (u16, Value) {
        let mut stream = tokio::net::TcpStream::connect(self.running.admin_addr)
            .await
            .unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }
}

fn names_of(cert: &OwnCertificate) -> Option<Workload> {
    peer_identity(&cert.chain[0]).unwrap().workload
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_carry_the_workloads_names_and_renewals_keep_them() {
    let control = control().await;
    let web = control
        .certify(None, &control.token("shop/web"), Some(("web", WEB_POD)))
        .await
        .unwrap();
    assert_eq!(names_of(&web), Some(Workload::new("shop", "web", WEB_POD)));
    // Renewal without names: the renewed certificate's.
    let renewed = control.certify(Some(web), "", None).await.unwrap();
    assert_eq!(
        names_of(&renewed),
        Some(Workload::new("shop", "web", WEB_POD))
    );
    // With names: the new ones.
    let moved = control
        .certify(Some(renewed), "", Some(("web", "web-0")))
        .await
        .unwrap();
    assert_eq!(
        names_of(&moved),
        Some(Workload::new("shop", "web", "web-0"))
    );
    let unnamed = control
        .certify(None, &control.token("shop/db"), None)
        .await
        .unwrap();
    assert_eq!(names_of(&unnamed), None);

    let bad = control
        .certify(None, &control.token("shop/web"), Some(("Web!", WEB_POD)))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");
    assert!(
        bad.message().starts_with("names: workload name \"Web!\""),
        "{}",
        bad.message()
    );

    // The admin view shows the names of a connected workload.
    let mut stream = control
        .channel(Some(moved))
        .await
        .watch(v1::WatchRequest {
            services: vec![],
            workload: "host-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .unwrap()
        .unwrap();
    let (status, workloads) = control.admin("/debug/workloads").await;
    assert_eq!(status, 200);
    assert_eq!(
        workloads["workloads"][0]["names"],
        serde_json::json!({"workload": "web", "pod": "web-0"})
    );
    control.running.shutdown().await;
}

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
