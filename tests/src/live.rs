//! The SMI conformance suite played live (`../shared/smi/CONFORMANCE.md`): a control service in
//! file mode, the suite's test app as real processes (`smi-conformance-app`), policy changed by
//! writing and deleting files with the suite's own manifests.
//!
//! After each policy step the harness waits (at most 5 s) until the control service has
//! published the change and every app has acknowledged it, so that the step's traffic check
//! runs exactly once, as the suite does. The time from the file write to the last
//! acknowledgement is printed (`--no-capture` shows it).
// Test harness: a failed request or a missing field fails the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use smi_control::serve::ServeConfig;
use smi_test_util::{Control, LocalControl, Process, admin};

use crate::{NAMESPACE, data_text};

/// How long a policy step may take to be enforced everywhere.
pub const WAIT: Duration = Duration::from_secs(5);

/// One app of a fixture: its SERVICE_NAME, ServiceAccount and the services it serves.
#[derive(Debug)]
pub struct AppSpec {
    pub name: &'static str,
    pub account: &'static str,
    pub serves: &'static [&'static str],
}

/// Fixture APP-ACCESS (traffic access and traffic spec suites).
pub const APP_ACCESS: [AppSpec; 3] = [
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
pub const APP_SPLIT: [AppSpec; 3] = [
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

#[derive(Debug)]
struct App {
    name: &'static str,
    /// `addrs`: the mesh listener, then the plain control listener.
    process: Process,
}

impl App {
    fn control(&self) -> std::net::SocketAddr {
        self.process.addrs[1]
    }
}

/// A control service in file mode and the fixture's apps as processes, with the slowest
/// enforcement seen so far.
#[derive(Debug)]
pub struct Suite {
    control: LocalControl,
    apps: Vec<App>,
    http: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    pub slowest: Duration,
}

impl Suite {
    /// Starts the control (`permissive`: access control off) and the apps of `fixture`, and
    /// waits until every app knows every endpoint and has acknowledged the policy.
    pub async fn start(fixture: &[AppSpec], permissive: bool) -> Suite {
        let control = LocalControl::start_with(&[], |config| ServeConfig {
            permissive,
            ..config
        })
        .await;
        let mut apps = Vec::new();
        for spec in fixture {
            let identity = format!("{NAMESPACE}/{}", spec.account);
            let services: Vec<String> = spec
                .serves
                .iter()
                .map(|s| format!("{NAMESPACE}/{s}"))
                .collect();
            let services: Vec<&str> = services.iter().map(String::as_str).collect();
            let api = control.running().api_addr;
            let process = Process::app(api, &control.state, spec.name, &identity, &services).await;
            apps.push(App {
                name: spec.name,
                process,
            });
        }
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let suite = Suite {
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

    /// Stops the control service (the apps stop with the suite).
    pub async fn shutdown(mut self) {
        self.control.shutdown().await;
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
        admin::get_json(self.control.running().admin_addr, path).await
    }

    async fn until_admin(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        admin::json_until(self.control.running().admin_addr, path, WAIT, done).await
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
    pub async fn apply(&mut self, rel: &str) {
        let before = self.policy_version().await;
        let written = Instant::now();
        for document in data_text(rel).split("\n---") {
            let Some((kind, name)) = kind_and_name(document) else {
                continue;
            };
            if !document.contains("smi-spec.io") && kind != "HTTPRouteGroup" {
                continue; // fixture objects (Deployments, Services): the apps are processes here
            }
            self.control
                .write_policy(&format!("{kind}-{name}.yaml"), document);
        }
        self.wait_acknowledged(before).await;
        self.note(rel, written.elapsed());
    }

    /// `kubectl delete`: removes the objects' files.
    pub async fn delete(&mut self, objects: &[(&str, &str)]) {
        let before = self.policy_version().await;
        let written = Instant::now();
        for (kind, name) in objects {
            self.control.remove_policy(&format!("{kind}-{name}.yaml"));
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

    pub async fn clear_metrics(&self) {
        for app in &self.apps {
            assert_eq!(
                self.request("DELETE", &format!("http://{}/metrics", app.control()), None)
                    .await
                    .0,
                200
            );
        }
    }

    pub async fn metrics(&self, app: &str) -> Value {
        self.request(
            "GET",
            &format!("http://{}/metrics", self.app(app).control()),
            None,
        )
        .await
        .1
    }

    /// app-a's `POST /call`.
    pub async fn call_from_a(&self, method: &str, url: &str) -> u16 {
        let body = json!({"url": url, "method": method, "headers": {}, "body": ""});
        self.request(
            "POST",
            &format!("http://{}/call", self.app("app-a").control()),
            Some(body),
        )
        .await
        .0
    }

    pub async fn received(&self, app: &str) -> usize {
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

/// The URL of `service` in the conformance namespace, on the app's port.
pub fn url(service: &str, path: &str) -> String {
    format!("http://{service}.{NAMESPACE}.svc.cluster.local:9091{path}")
}

/// The list `key` of an app's metrics.
pub fn list(metrics: &Value, key: &str) -> Vec<Value> {
    metrics[key].as_array().cloned().unwrap_or_default()
}
