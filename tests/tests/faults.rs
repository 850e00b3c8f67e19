//! Faults under load, end to end on 127.0.0.1. Two allowed clients (bookbuyer) and one refused
//! client (bookthief) call the bookstore without pause, three requests in flight each, while in
//! turn: the policy files churn (split weights, an unrelated TrafficTarget, a broken file),
//! certificates rotate (5 s lifetime: every workload renews every ~3.5 s), the control service
//! process is killed (SIGKILL) and restarted, and endpoints go and come.
//!
//! Every request carries an id and is counted: each allowed one is answered 200 by a backend of
//! the split, exactly once (the servers keep a ledger of the ids they served); each refused one
//! gets 403 from the server's authorization and never reaches the application; no request fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use smi_client::{Mesh, MeshClient};
use smi_test_util::bookstore::{ACCESS, BUY, split};
use smi_test_util::{Control, LiveControl, Server, policy_until, renewals, status_until};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(15);
const CERTIFICATE_TTL: Duration = Duration::from_secs(5);
const IN_FLIGHT: usize = 3;

/// A TrafficTarget that concerns neither client: churn that must change no decision.
const UNRELATED: &str = "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: reader, namespace: bookstore}\nspec:\n  destination: {kind: ServiceAccount, name: bookstore, namespace: bookstore}\n  sources:\n  - {kind: ServiceAccount, name: bookreader, namespace: bookreader}\n  rules:\n  - {kind: HTTPRouteGroup, name: bookstore-service-routes, matches: [books-bought]}\n";

/// Which backend served each request id (every server appends to it).
type Ledger = Arc<Mutex<HashMap<String, Vec<String>>>>;

/// The control service in its own process (`smi-test-control`), which the test kills, over the
/// bookstore policy split 50/50; and the ledger of its servers.
struct Bench {
    live: LiveControl,
    ledger: Ledger,
}

impl Bench {
    async fn start() -> Bench {
        let files = [("access.yaml", ACCESS), ("split.yaml", &split(50, 50))];
        Bench {
            live: LiveControl::start_with(&files, &[], CERTIFICATE_TTL).await,
            ledger: Ledger::default(),
        }
    }

    async fn mesh(&self, identity: &str, calls: &[&str]) -> Mesh {
        self.live.mesh(identity, &[], calls).await
    }

    /// A bookstore server (ServiceAccount bookstore/bookstore) registered as `service`; it
    /// answers with its name and the request's id, and writes the id in the ledger.
    async fn server(&self, service: &str, name: &'static str) -> Server {
        let ledger = self.ledger.clone();
        let router = Router::new().fallback(move |headers: HeaderMap| {
            let ledger = ledger.clone();
            async move {
                let id = headers
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                ledger
                    .lock()
                    .unwrap()
                    .entry(id.clone())
                    .or_default()
                    .push(name.to_owned());
                [("x-backend", name.to_owned()), ("x-request-id", id)]
            }
        });
        let serves = format!("bookstore/{service}");
        Server::start(&self.live, "bookstore/bookstore", &[&serves], router).await
    }
}

/// What happened to one request.
#[derive(Debug)]
enum Outcome {
    Answered {
        status: StatusCode,
        backend: Option<String>,
        echoed: Option<String>,
    },
    Failed(String),
}

/// Sends requests, `IN_FLIGHT` at a time, until `stop`; every one is counted in `progress`.
async fn load(
    name: &'static str,
    mesh: Mesh,
    stop: watch::Receiver<bool>,
    progress: Arc<watch::Sender<u64>>,
) -> Vec<(String, Outcome)> {
    let client = MeshClient::<Full<Bytes>>::new(mesh);
    let mut lanes = Vec::new();
    for lane in 0..IN_FLIGHT {
        let (client, stop, progress) = (client.clone(), stop.clone(), progress.clone());
        lanes.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for n in 0.. {
                if *stop.borrow() {
                    break;
                }
                let id = format!("{name}-{lane}-{n}");
                let request = Request::get(BUY)
                    .header("x-request-id", &id)
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                let outcome = match client.send(request).await {
                    Ok(response) => {
                        let header = |h: &str| {
                            response
                                .headers()
                                .get(h)
                                .map(|v| v.to_str().unwrap().to_owned())
                        };
                        let (backend, echoed) = (header("x-backend"), header("x-request-id"));
                        let status = response.status();
                        match response.into_body().collect().await {
                            Ok(_) => Outcome::Answered {
                                status,
                                backend,
                                echoed,
                            },
                            Err(e) => Outcome::Failed(format!("body: {e}")),
                        }
                    }
                    Err(e) => Outcome::Failed(e.to_string()),
                };
                outcomes.push((id, outcome));
                progress.send_modify(|n| *n += 1);
            }
            outcomes
        }));
    }
    let mut all = Vec::new();
    for lane in lanes {
        all.extend(lane.await.unwrap());
    }
    all
}

/// Waits until `n` more requests (of all clients) have completed.
async fn requests_pass(progress: &watch::Sender<u64>, n: u64) {
    let mut seen = progress.subscribe();
    let target = *seen.borrow() + n;
    tokio::time::timeout(WAIT, seen.wait_for(|done| *done >= target))
        .await
        .unwrap_or_else(|_| panic!("{n} requests did not complete within 15 s"))
        .unwrap();
}

/// Waits until every mesh has applied a policy newer than the one it had when `before` was
/// taken.
async fn all_apply_a_newer_policy(meshes: &[&Mesh], before: &[u64]) {
    for (mesh, before) in meshes.iter().zip(before) {
        tokio::time::timeout(WAIT, mesh.changed().wait_for(|v| v > before))
            .await
            .expect("the policy change reaches every workload within 15 s")
            .unwrap();
    }
}

fn versions(meshes: &[&Mesh]) -> Vec<u64> {
    meshes.iter().map(|m| m.policy().version).collect()
}

/// Waits until the mesh sees exactly `addrs` as the endpoints of `service`.
async fn endpoints_are(mesh: &Mesh, service: &str, addrs: &[SocketAddr]) {
    let mut want = addrs.to_vec();
    want.sort();
    let what = format!("{service} endpoints becoming {addrs:?}");
    policy_until(mesh, &what, WAIT, |policy| {
        let mut seen: Vec<SocketAddr> = policy
            .endpoints("bookstore", service)
            .iter()
            .map(|e| e.addr)
            .collect();
        seen.sort();
        seen == want
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_answered_or_refused_exactly_as_policy_says_through_faults() {
    let mut bench = Bench::start().await;
    let v1a = bench.server("bookstore-v1", "v1a").await;
    let mut v1b = bench.server("bookstore-v1", "v1b").await;
    let v2a = bench.server("bookstore-v2", "v2a").await;
    let calls = ["bookstore/bookstore"];
    let buyer1 = bench.mesh("bookbuyer/bookbuyer", &calls).await;
    let buyer2 = bench.mesh("bookbuyer/bookbuyer", &calls).await;
    let thief = bench.mesh("bookthief/bookthief", &calls).await;
    let clients = [&buyer1, &buyer2, &thief];
    for mesh in clients {
        endpoints_are(mesh, "bookstore-v1", &[v1a.addr, v1b.addr]).await;
        endpoints_are(mesh, "bookstore-v2", &[v2a.addr]).await;
    }

    let (stop, stopped) = watch::channel(false);
    let progress = Arc::new(watch::Sender::new(0u64));
    let loads = [
        ("buyer1", buyer1.clone()),
        ("buyer2", buyer2.clone()),
        ("thief", thief.clone()),
    ]
    .map(|(name, mesh)| tokio::spawn(load(name, mesh, stopped.clone(), progress.clone())));
    requests_pass(&progress, 300).await;

    // 1. Policy churn: split weights, an unrelated TrafficTarget, a broken file (the last good
    //    policy keeps serving), then both removed.
    for (v1, v2) in [(90, 10), (10, 90), (50, 50)] {
        let before = versions(&clients);
        bench.live.write_policy("split.yaml", &split(v1, v2));
        all_apply_a_newer_policy(&clients, &before).await;
        requests_pass(&progress, 150).await;
    }
    // The TrafficTarget concerns the servers' identity only: the clients' view does not change.
    let servers = [&v1a.mesh];
    let before = versions(&servers);
    bench.live.write_policy("unrelated.yaml", UNRELATED);
    all_apply_a_newer_policy(&servers, &before).await;
    bench
        .live
        .write_policy("broken.yaml", "kind: TrafficTarget\nspec: [unclosed\n");
    requests_pass(&progress, 300).await;
    let before = versions(&servers);
    bench.live.remove_policy("broken.yaml");
    bench.live.remove_policy("unrelated.yaml");
    all_apply_a_newer_policy(&servers, &before).await;
    requests_pass(&progress, 150).await;

    // 2. Certificate rotation: every client and a server renew twice under load.
    for mesh in clients.into_iter().chain([&v1a.mesh]) {
        renewals(mesh, 2, WAIT).await;
    }

    // 3. The control service is killed and restarted on the same address.
    bench.live.kill().await;
    for mesh in clients {
        status_until(mesh, "noticing the control is gone", WAIT, |m| {
            !m.status().connected
        })
        .await;
    }
    requests_pass(&progress, 150).await;
    bench.live.start_again().await;
    for mesh in clients {
        status_until(mesh, "reconnecting", WAIT, |m| m.status().connected).await;
    }
    requests_pass(&progress, 300).await;

    // 4. Endpoints go (deregistered, then stopped once every client stopped using it) and come.
    v1b.registrations.clear(); // deregisters: the control tells every client
    for mesh in clients {
        endpoints_are(mesh, "bookstore-v1", &[v1a.addr]).await;
    }
    drop(v1b);
    requests_pass(&progress, 150).await;
    let v2b = bench.server("bookstore-v2", "v2b").await;
    for mesh in clients {
        endpoints_are(mesh, "bookstore-v2", &[v2a.addr, v2b.addr]).await;
    }
    requests_pass(&progress, 600).await;

    stop.send(true).unwrap();
    let mut outcomes = HashMap::new();
    for (name, load) in ["buyer1", "buyer2", "thief"].iter().zip(loads) {
        outcomes.insert(*name, load.await.unwrap());
    }
    let ledger = bench.ledger.lock().unwrap().clone();

    // Count every request.
    let mut allowed = 0;
    let mut by_backend: HashMap<String, usize> = HashMap::new();
    for (client, requests) in &outcomes {
        for (id, outcome) in requests {
            match outcome {
                Outcome::Answered {
                    status,
                    backend,
                    echoed,
                } if client.starts_with("buyer") => {
                    assert_eq!(*status, StatusCode::OK, "allowed request {id} denied");
                    assert_eq!(
                        echoed.as_deref(),
                        Some(id.as_str()),
                        "{id} answered for another"
                    );
                    let backend = backend.clone().unwrap();
                    assert_eq!(
                        ledger.get(id),
                        Some(&vec![backend.clone()]),
                        "{id} must be served once, by the backend that answered"
                    );
                    *by_backend.entry(backend).or_default() += 1;
                    allowed += 1;
                }
                Outcome::Answered {
                    status,
                    backend,
                    echoed,
                } => {
                    assert_eq!(*status, StatusCode::FORBIDDEN, "refused request {id}");
                    assert_eq!((backend, echoed), (&None, &None), "{id} reached the app");
                    assert!(!ledger.contains_key(id), "{id} reached the app");
                }
                Outcome::Failed(e) => panic!("request {id} from {client} was lost: {e}"),
            }
        }
    }
    // No request the clients did not count was served (no duplicates, no strays).
    assert_eq!(
        ledger.len(),
        allowed,
        "served ids beyond the counted requests"
    );
    let refused = outcomes["thief"].len();
    eprintln!("allowed {allowed} (by backend {by_backend:?}), refused {refused}, lost 0");
    assert!(
        allowed >= 1000 && refused >= 300,
        "too few requests: {allowed}, {refused}"
    );
    // Every backend served, the one that came last included.
    for backend in ["v1a", "v1b", "v2a", "v2b"] {
        assert!(
            by_backend.get(backend).copied().unwrap_or(0) > 0,
            "{backend} served nothing"
        );
    }
    drop((v1a, v2a, v2b));
}
