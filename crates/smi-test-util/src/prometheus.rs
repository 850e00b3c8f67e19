//! A real Prometheus server (Debian's `prometheus`, which the README's test command installs) on
//! 127.0.0.1, scraping workloads' admin endpoints every second, and its HTTP query API.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use http::StatusCode;
use tokio::io::AsyncReadExt;

use crate::admin;

/// How long Prometheus may take to start answering.
const READY: Duration = Duration::from_secs(30);

/// A Prometheus process, killed when dropped, with its data in a temporary directory.
#[derive(Debug)]
pub struct Prometheus {
    pub addr: SocketAddr,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `/metrics` on each of `targets` every second (the binary is
    /// `prometheus` on the PATH, or `SMI_PROMETHEUS`); returns once it has scraped each.
    pub async fn start(targets: &[SocketAddr]) -> Prometheus {
        let dir = tempfile::tempdir().expect("a temporary directory for Prometheus");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n- job_name: mesh\n  metrics_path: /metrics\n  static_configs:\n  - targets: [{}]\n",
            targets.join(", ")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("writing prometheus.yml");
        let addr = free_port();
        let binary = std::env::var("SMI_PROMETHEUS").unwrap_or_else(|_| "prometheus".to_owned());
        let mut child = tokio::process::Command::new(&binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting {binary} (scripts/test installs Debian's prometheus): {e}")
            });
        let deadline = Instant::now() + READY;
        loop {
            if let Ok(Some(exit)) = child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr).await;
                }
                panic!("prometheus exited with {exit} before it was ready:\n{stderr}");
            }
            if let Some((StatusCode::OK, _)) = admin::try_get_text(addr, "/-/ready").await {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus was not ready within {READY:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Its log is not read from here on: let it go nowhere rather than fill a pipe.
        drop(child.stderr.take());
        let prometheus = Prometheus {
            addr,
            child,
            _dir: dir,
        };
        // Ready is not scraping: its scrape manager applies targets on a 5 s tick. Traffic sent
        // before the first scrape would first be seen at its final count, with no rate.
        let every_target = targets.len() as f64;
        prometheus
            .query_until("count(up == 1)", READY, |up| up == every_target)
            .await;
        prometheus
    }

    /// An instant query through the HTTP API: the value of each sample of the resulting vector
    /// (or the scalar), in the order returned. Panics on a query error, naming it.
    pub async fn query(&self, promql: &str) -> Vec<f64> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let (status, body) = admin::get_text(self.addr, &path).await;
        assert_eq!(status, StatusCode::OK, "query {promql}: {body}");
        let answer: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("query {promql}: {e}: {body}"));
        let data = &answer["data"];
        let value = |v: &serde_json::Value| -> f64 {
            v[1].as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("query {promql}: a sample without a value: {body}"))
        };
        match data["resultType"].as_str() {
            Some("vector") => data["result"]
                .as_array()
                .map(|samples| samples.iter().map(|s| value(&s["value"])).collect())
                .unwrap_or_default(),
            Some("scalar") => vec![value(&data["result"])],
            _ => panic!("query {promql}: unexpected answer {body}"),
        }
    }

    /// The single value of `promql` once `until` holds for it, polling the query API (Prometheus
    /// has no notification) until `timeout`; panics with the last value otherwise.
    pub async fn query_until(
        &self,
        promql: &str,
        timeout: Duration,
        until: impl Fn(f64) -> bool,
    ) -> f64 {
        let deadline = Instant::now() + timeout;
        loop {
            let values = self.query(promql).await;
            if let [value] = values.as_slice()
                && until(*value)
            {
                return *value;
            }
            assert!(
                Instant::now() < deadline,
                "{promql} did not reach the expected value within {timeout:?}; last: {values:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// A port nothing listens on now (the kernel's pick, released for Prometheus to bind).
fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
