//! The SMI conformance suite end to end (`../shared/smi/CONFORMANCE.md`, every step of traffic
//! access, traffic spec and traffic split): a real control service in file mode, the suite's
//! test app as real processes (`smi-conformance-app`), real mTLS on 127.0.0.1, policy changed by
//! writing and deleting files with the suite's own manifests.
//!
//! After each policy step the harness waits (at most 5 s) until the control service has
//! published the change and every app has acknowledged it, then runs the step's traffic check
//! exactly once, as the suite does. The time from the file write to the last acknowledgement is
//! printed (`--no-capture` shows it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use smi_control::ca::CaStore;
use smi_control::enroll::JoinTokens;
use smi_control::serve::{Running, ServeConfig, start};
use smi_core::{ServiceAccount, ServiceRef};
use smi_tests::{NAMESPACE, data_text};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(5);

/// One app of a fixture: its SERVICE_NAME, ServiceAccount and the services it serves.
struct AppSpec {
    name: &'static str,
    account: &'static str,
    serves: &'static [&'static str],
}

/// Fixture APP-ACCESS (traffic access and traffic spec suites).
const APP_ACCESS: [AppSpec; 3] = [
    AppSpec {
        name: "app-a",
        account: "service-a",
        serves: &["app-a"],
    },
    AppSpec {
        name: "app-b",
        account: "service-b",
        serves: &["app-b"],
    },
    AppSpec {
        name: "app-c",
        account: "service-c",
        serves: &["app-c"],
    },
];

/// Fixture APP-SPLIT: every pod runs as `default`; app-svc selects the b and c pods.
const APP_SPLIT: [AppSpec; 3] = [
    AppSpec {
        name: "app-a",
        account: "default",
        serves: &["app-a"],
    },
    AppSpec {
        name: "app-b",
        account: "default",
        serves: &["app-b", "app-svc"],
    },
    AppSpec {
        name: "app-c",
        account: "default",
        serves: &["app-c", "app-svc"],
    },
];

struct App {
    name: &'static str,
    control: String,
    _process: Child,
}

struct Suite {
    _dir: tempfile::TempDir,
    policy: PathBuf,
    control: Running,
    apps: Vec<App>,
    http: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    slowest: Duration,
}

impl Suite {
    async fn start(fixture: &[AppSpec], permissive: bool) -> Suite {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&policy).unwrap();
        let control = start(ServeConfig {
            policy_dir: policy.clone(),
            state_dir: state.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            admin: "127.0.0.1:0".parse().unwrap(),
            permissive,
            ..ServeConfig::default()
        })
        .await
        .unwrap();
        let store = CaStore::new(&state);
        let ca = store.load("cluster.local").unwrap();
        let tokens = JoinTokens::new(&store.token_key().unwrap(), "cluster.local");
        let mut apps = Vec::new();
        for spec in fixture {
            let serves: Vec<ServiceRef> = spec
                .serves
                .iter()
                .map(|s| ServiceRef::new(NAMESPACE, *s))
                .collect();
            let token = tokens.create(
                &ServiceAccount::new(NAMESPACE, spec.account),
                &serves,
                Duration::from_secs(600),
                ca.bundle(),
            );
            let mut command = Command::new(env!("CARGO_BIN_EXE_smi-conformance-app"));
            command
                .args([
                    "--name",
                    spec.name,
                    "--control",
                    &control.api_addr.to_string(),
                    "--token",
                    &token,
                ])
                .stdout(Stdio::piped())
                .kill_on_drop(true);
            for s in spec.serves {
                command.args(["--service", &format!("{NAMESPACE}/{s}")]);
            }
            let mut child = command.spawn().unwrap();
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
                .await
                .expect("the app starts")
                .unwrap()
                .expect("the app prints its addresses");
            let words: Vec<&str> = ready.split_whitespace().collect();
            assert_eq!(words.first(), Some(&"ready"), "{ready}");
            apps.push(App {
                name: spec.name,
                control: words[2].to_owned(),
                _process: child,
            });
        }
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let suite = Suite {
            _dir: dir,
            policy,
            control,
            apps,
            http,
            slowest: Duration::ZERO,
        };
        // Every app knows the endpoints of every service before the first step.
        suite
            .until_admin("/debug/policy", |p| {
                let served = fixture
                    .iter()
                    .flat_map(|a| a.serves)
                    .collect::<std::collections::BTreeSet<_>>()
                    .len();
                p["endpoints"].as_array().map(|e| {
                    e.iter()
                        .filter(|s| s["endpoints"].as_array().is_some_and(|l| !l.is_empty()))
                        .count()
                }) == Some(served)
            })
            .await;
        suite.wait_acknowledged(0).await;
        suite
    }

    async fn request(&self, method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let request = http::Request::builder()
            .method(method)
            .uri(url)
            .header("content-type", "application/json")
            .body(Full::new(body))
            .unwrap();
        let response = self.http.request(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn admin(&self, path: &str) -> Value {
        self.request(
            "GET",
            &format!("http://{}{path}", self.control.admin_addr),
            None,
        )
        .await
        .1
    }

    async fn until_admin(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        tokio::time::timeout(WAIT, async {
            loop {
                let value = self.admin(path).await;
                if done(&value) {
                    return value;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{path}: the expected state did not come within 5 s"))
    }

    async fn policy_version(&self) -> u64 {
        self.admin("/debug/policy").await["status"]["version"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Waits until a policy newer than `before` is published without errors and every app has
    /// acknowledged it (or a later version).
    async fn wait_acknowledged(&self, before: u64) {
        let policy = self
            .until_admin("/debug/policy", |p| {
                p["status"]["version"].as_u64().unwrap_or(0) > before
                    && p["status"]["errors"].as_array().is_some_and(Vec::is_empty)
            })
            .await;
        let version = policy["status"]["version"].as_u64().unwrap();
        // A workload is current when its view was computed at `version` or later and it
        // acknowledged what was last sent (an unchanged view is not sent again).
        self.until_admin("/debug/workloads", |w| {
            self.apps.iter().all(|app| {
                w["workloads"].as_array().into_iter().flatten().any(|s| {
                    let at = |k: &str| s[k].as_u64().unwrap_or(0);
                    s["workload"] == app.name
                        && at("current_version") >= version
                        && at("acked_version") >= at("sent_version")
                        && at("sent_version") > 0
                })
            })
        })
        .await;
    }

    /// `kubectl apply` of a step's manifest: each SMI document becomes (or replaces) one file
    /// named by kind and name. Returns after every app has acknowledged the result.
    async fn apply(&mut self, rel: &str) {
        let before = self.policy_version().await;
        let written = Instant::now();
        for document in data_text(rel).split("\n---") {
            let Some((kind, name)) = kind_and_name(document) else {
                continue;
            };
            if !document.contains("smi-spec.io") && kind != "HTTPRouteGroup" {
                continue; // fixture objects (Deployments, Services): the apps are processes here
            }
            let path = self.policy.join(format!("{kind}-{name}.yaml"));
            let tmp = self.policy.join(format!(".{kind}-{name}.tmp"));
            std::fs::write(&tmp, document).unwrap();
            std::fs::rename(tmp, path).unwrap();
        }
        self.wait_acknowledged(before).await;
        self.note(rel, written.elapsed());
    }

    /// `kubectl delete`: removes the objects' files.
    async fn delete(&mut self, objects: &[(&str, &str)]) {
        let before = self.policy_version().await;
        let written = Instant::now();
        for (kind, name) in objects {
            std::fs::remove_file(self.policy.join(format!("{kind}-{name}.yaml"))).unwrap();
        }
        self.wait_acknowledged(before).await;
        self.note("delete", written.elapsed());
    }

    fn note(&mut self, step: &str, took: Duration) {
        eprintln!(
            "{step}: enforced everywhere {:.0} ms after the write",
            took.as_secs_f64() * 1e3
        );
        self.slowest = self.slowest.max(took);
        assert!(took < WAIT);
    }

    fn app(&self, name: &str) -> &App {
        self.apps.iter().find(|a| a.name == name).unwrap()
    }

    async fn clear_metrics(&self) {
        for app in &self.apps {
            assert_eq!(
                self.request("DELETE", &format!("http://{}/metrics", app.control), None)
                    .await
                    .0,
                200
            );
        }
    }

    async fn metrics(&self, app: &str) -> Value {
        self.request(
            "GET",
            &format!("http://{}/metrics", self.app(app).control),
            None,
        )
        .await
        .1
    }

    /// app-a's `POST /call`.
    async fn call_from_a(&self, method: &str, url: &str) -> u16 {
        let body = json!({"url": url, "method": method, "headers": {}, "body": ""});
        self.request(
            "POST",
            &format!("http://{}/call", self.app("app-a").control),
            Some(body),
        )
        .await
        .0
    }

    async fn received(&self, app: &str) -> usize {
        self.metrics(app).await["ReqReceived"]
            .as_array()
            .map_or(0, Vec::len)
    }
}

fn kind_and_name(document: &str) -> Option<(String, String)> {
    let kind = document
        .lines()
        .find_map(|l| l.strip_prefix("kind:"))?
        .trim()
        .to_owned();
    let name = document
        .lines()
        .find_map(|l| l.strip_prefix("  name:"))?
        .trim()
        .to_owned();
    Some((kind, name))
}

fn url(service: &str, path: &str) -> String {
    format!("http://{service}.{NAMESPACE}.svc.cluster.local:9091{path}")
}

fn list(metrics: &Value, key: &str) -> Vec<Value> {
    metrics[key].as_array().cloned().unwrap_or_default()
}

/// TA-1.2.1 and TA-1.2.5: one GET /echo from app-a to app-b fails with an HTTP status.
async fn assert_blocked(suite: &Suite) {
    suite.clear_metrics().await;
    let target = url("app-b", "/echo");
    assert_eq!(suite.call_from_a("GET", &target).await, 403);
    let a = suite.metrics("app-a").await;
    assert_eq!(list(&a, "RespSucceeded").len(), 0, "{a}");
    assert_eq!(list(&a, "RespFailed").len(), 1, "{a}");
    assert_eq!(list(&a, "RespFailed")[0]["URL"], target.as_str());
    assert_eq!(suite.received("app-b").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_access_suite() {
    let started = Instant::now();
    let mut suite = Suite::start(&APP_ACCESS, false).await;
    // TA-1.2.1: denied by default.
    assert_blocked(&suite).await;
    // TA-1.2.2: the TCPRoute (all ports) and the TrafficTarget service-a -> service-b.
    suite
        .apply("conformance/traffic-access/04-install.yaml")
        .await;
    // TA-1.2.3: allowed, delivered exactly once, with the ServiceName header.
    suite.clear_metrics().await;
    let target = url("app-b", "/echo");
    assert_eq!(suite.call_from_a("GET", &target).await, 200);
    let a = suite.metrics("app-a").await;
    assert_eq!(
        (
            list(&a, "RespSucceeded").len(),
            list(&a, "RespFailed").len()
        ),
        (1, 0),
        "{a}"
    );
    assert_eq!(list(&a, "RespSucceeded")[0]["URL"], target.as_str());
    let b = suite.metrics("app-b").await;
    assert_eq!(list(&b, "ReqReceived"), vec![json!("app-a")]);
    // TA-1.2.4: delete both objects.
    suite
        .delete(&[
            ("TCPRoute", "service-tcp-route"),
            ("TrafficTarget", "service-targets"),
        ])
        .await;
    // TA-1.2.5: blocked again, on connections that were open and allowed before.
    assert_blocked(&suite).await;
    eprintln!(
        "traffic access: 7 steps in {:.2} s; slowest enforcement {:?}",
        started.elapsed().as_secs_f64(),
        suite.slowest
    );
    suite.control.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_spec_suite() {
    let started = Instant::now();
    let mut suite = Suite::start(&APP_ACCESS, false).await;
    // TSC-1.2.1: only /metrics, any method (top-level `matches` under v1alpha4; port "9091").
    suite
        .apply("conformance/traffic-spec/03-install.yaml")
        .await;
    // TSC-1.2.2: /metrics allowed, /echo denied.
    suite.clear_metrics().await;
    assert_eq!(
        suite.call_from_a("GET", &url("app-b", "/metrics")).await,
        200
    );
    assert_eq!(suite.call_from_a("GET", &url("app-b", "/echo")).await, 403);
    let a = suite.metrics("app-a").await;
    let (ok, failed) = (list(&a, "RespSucceeded"), list(&a, "RespFailed"));
    assert_eq!((ok.len(), failed.len()), (1, 1), "{a}");
    assert!(ok[0]["URL"].as_str().unwrap().ends_with("/metrics"));
    assert!(failed[0]["URL"].as_str().unwrap().ends_with("/echo"));
    // TSC-1.2.3: any path, GET only (the same match replaced in place).
    suite
        .apply("conformance/traffic-spec/05-install.yaml")
        .await;
    // TSC-1.2.4: GET allowed, POST denied.
    suite.clear_metrics().await;
    assert_eq!(suite.call_from_a("GET", &url("app-b", "/echo")).await, 200);
    assert_eq!(suite.call_from_a("POST", &url("app-b", "/echo")).await, 403);
    let a = suite.metrics("app-a").await;
    let (ok, failed) = (list(&a, "RespSucceeded"), list(&a, "RespFailed"));
    assert_eq!((ok.len(), failed.len()), (1, 1), "{a}");
    assert_eq!(ok[0]["Method"], "GET");
    assert_eq!(failed[0]["Method"], "POST");
    eprintln!(
        "traffic spec: 6 steps in {:.2} s; slowest enforcement {:?}",
        started.elapsed().as_secs_f64(),
        suite.slowest
    );
    suite.control.shutdown().await;
}

/// The split scenario: `n` sequential calls from app-a to app-svc; (app-b, app-c) received.
async fn split_traffic(suite: &Suite, n: usize) -> (usize, usize) {
    suite.clear_metrics().await;
    for _ in 0..n {
        assert_eq!(
            suite.call_from_a("GET", &url("app-svc", "/echo")).await,
            200
        );
    }
    (suite.received("app-b").await, suite.received("app-c").await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_split_suite() {
    let started = Instant::now();
    // APP-SPLIT has no TrafficTargets: the suite needs access control off (permissive mode).
    let mut suite = Suite::start(&APP_SPLIT, true).await;
    // TS-1.2.1: no split: app-svc balances over b and c.
    let (b, c) = split_traffic(&suite, 50).await;
    assert!(b >= 1 && c >= 1, "b={b} c={c}");
    // TS-1.2.2 / TS-1.2.3: 1 / 0.
    suite
        .apply("conformance/traffic-split/04-install.yaml")
        .await;
    assert_eq!(split_traffic(&suite, 50).await, (50, 0));
    // TS-1.2.4 / TS-1.2.5: 0 / 1.
    suite
        .apply("conformance/traffic-split/06-install.yaml")
        .await;
    assert_eq!(split_traffic(&suite, 50).await, (0, 50));
    // TS-1.2.6 / TS-1.2.7: 75 / 25. The suite sends 50 and checks b > c; a random weighted
    // pick fails that with probability 1.2e-4, so this sends 100 (about 1e-7).
    suite
        .apply("conformance/traffic-split/08-install.yaml")
        .await;
    let (b, c) = split_traffic(&suite, 100).await;
    assert!(b > c, "b={b} c={c}");
    // TS-1.2.8 / TS-1.2.9: 25 / 75.
    suite
        .apply("conformance/traffic-split/10-install.yaml")
        .await;
    let (b, c) = split_traffic(&suite, 100).await;
    assert!(b < c, "b={b} c={c}");
    eprintln!(
        "traffic split: 11 steps in {:.2} s; slowest enforcement {:?}",
        started.elapsed().as_secs_f64(),
        suite.slowest
    );
    suite.control.shutdown().await;
}
