//! Control replicas sharing their state in a real 3-member etcd cluster (Debian's etcd-server,
//! on 127.0.0.1), with real replica processes and workloads, under faults: a replica killed, the
//! etcd leader killed, etcd gone entirely, a compaction while a replica was cut off. Every wait
//! is on an event with a timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use smi_client::{Mesh, MeshClient};
use smi_core::SpiffeId;
use smi_server::AuthorizeLayer;
use smi_test_util::bookstore::{ACCESS, BUY, split};
use smi_test_util::etcd::EtcdCluster;
use smi_test_util::{Replicas, Server, policy_until, renewals};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(15);
const LONG_TTL: Duration = Duration::from_secs(600);

/// Waits until `done` holds for replica `i`'s `/debug/policy` view, asking every 20 ms.
async fn view_until(
    replicas: &Replicas,
    i: usize,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let view = replicas.view(i).await;
        if done(&view) {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "replica {i}: {what} not within {WAIT:?}: {view}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn splits(view: &Value) -> Vec<String> {
    view["resources"]["traffic_splits"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn targets(view: &Value) -> Vec<String> {
    view["resources"]["traffic_targets"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A TrafficSplit of `service` named `name` in bookstore: a change that is easy to look for.
fn named_split(name: &str) -> String {
    format!(
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {{name: {name}, namespace: bookstore}}\nspec:\n  service: bookstore\n  backends:\n  - {{service: bookstore-v1, weight: 1}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_publish_the_same_version_for_the_same_change_within_a_second() {
    let cluster = EtcdCluster::start(3).await;
    let replicas = Replicas::start(&cluster, 2, LONG_TTL, &[]).await;
    replicas.apply(ACCESS);
    for i in 0..2 {
        view_until(&replicas, i, "the access policy", |v| {
            !targets(v).is_empty()
        })
        .await;
    }
    let started = Instant::now();
    replicas.apply(&named_split("first"));
    let mut seen = Vec::new();
    // Both are polled in turn, so each one's moment is known to within a poll.
    let deadline = started + WAIT;
    let mut at = [None, None];
    let mut versions = [0, 0];
    while at.iter().any(Option::is_none) {
        for i in 0..2 {
            if at[i].is_none() {
                let view = replicas.view(i).await;
                if splits(&view).contains(&"bookstore/first".to_owned()) {
                    at[i] = Some(started.elapsed());
                    versions[i] = view["version"].as_u64().unwrap();
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "the change did not reach both replicas: {at:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    seen.push(at);
    let [a, b] = at.map(Option::unwrap);
    assert!(
        a.abs_diff(b) <= Duration::from_secs(1),
        "published {a:?} and {b:?} after the change"
    );
    assert_eq!(
        versions[0], versions[1],
        "the same change, the same version"
    );
    // A second change: a newer version, again the same on both.
    replicas.apply(&named_split("second"));
    let mut second = [0, 0];
    for (i, version) in second.iter_mut().enumerate() {
        let view = view_until(&replicas, i, "the second change", |v| {
            splits(v).contains(&"bookstore/second".to_owned())
        })
        .await;
        *version = view["version"].as_u64().unwrap();
    }
    assert_eq!(second[0], second[1]);
    assert!(second[0] > versions[0], "{second:?} after {versions:?}");
    eprintln!("published after {seen:?}; versions {versions:?} then {second:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_one_replica_enrolls_through_another_and_a_revocation_reaches_workloads_of_both()
 {
    let cluster = EtcdCluster::start(3).await;
    let replicas = Replicas::start(&cluster, 2, LONG_TTL, &[]).await;
    replicas.apply(ACCESS);
    // Each workload told only one replica: the first through replica 0, the second through 1.
    let on_first = replicas
        .mesh_on(0, "bookbuyer/bookbuyer", &[], &["*"])
        .await;
    let on_second = replicas
        .mesh_on(1, "bookbuyer/bookbuyer", &[], &["*"])
        .await;
    // A token minted with etcd's key (as `smictl token create --etcd` does) enrolls through
    // replica 1 as well; a second use of a one-use token is refused by the other replica.
    let token = replicas.token("bookthief/bookthief", &[], Default::default());
    let enrolled = smi_client::control::enroll(&replicas.addr_of(1), &token).await;
    assert!(enrolled.is_ok(), "{enrolled:?}");
    let again = smi_client::control::enroll(&replicas.addr_of(0), &token).await;
    let refused = smi_test_util::refused(again);
    assert!(refused.contains("used"), "{refused}");

    assert_eq!(
        replicas.smictl(
            &["revoke"],
            &["--identity", "bookthief/bookthief", "--reason", "test"]
        ),
        ExitCode::SUCCESS
    );
    let thief: SpiffeId = "spiffe://cluster.local/ns/bookthief/sa/bookthief"
        .parse()
        .unwrap();
    for mesh in [&on_first, &on_second] {
        policy_until(mesh, "the revocation", WAIT, |p| {
            p.snapshot.is_revoked(&thief)
        })
        .await;
    }
    let token = replicas.token("bookthief/bookthief", &[], Default::default());
    let refused =
        smi_test_util::refused(smi_client::control::enroll(&replicas.addr_of(0), &token).await);
    assert!(refused.contains("revoked"), "{refused}");
}

/// Which backend served each request id.
type Ledger = Arc<Mutex<HashMap<String, Vec<String>>>>;

async fn backend(replicas: &Replicas, service: &str, name: &'static str, ledger: Ledger) -> Server {
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
            [("x-backend", name.to_owned())]
        }
    });
    let serves = format!("bookstore/{service}");
    let mesh = replicas.mesh("bookstore/bookstore", &[&serves], &[]).await;
    let app = tower_layer::Layer::layer(&AuthorizeLayer::new(mesh.clone()), router);
    Server::on(mesh, &[&serves], app, Default::default()).await
}

/// Sends requests, three at a time, until `stop`; the status of each by id (or its error).
async fn load(
    mesh: Mesh,
    stop: watch::Receiver<bool>,
    done: Arc<watch::Sender<u64>>,
) -> Vec<(String, Result<StatusCode, String>)> {
    let client = MeshClient::<Full<Bytes>>::new(mesh);
    let mut lanes = Vec::new();
    for lane in 0..3 {
        let (client, stop, done) = (client.clone(), stop.clone(), done.clone());
        lanes.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for n in 0.. {
                if *stop.borrow() {
                    break;
                }
                let id = format!("{lane}-{n}");
                let request = Request::get(BUY)
                    .header("x-request-id", &id)
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                let outcome = match client.send(request).await {
                    Ok(response) => {
                        let status = response.status();
                        match response.into_body().collect().await {
                            Ok(_) => Ok(status),
                            Err(e) => Err(format!("body: {e}")),
                        }
                    }
                    Err(e) => Err(e.to_string()),
                };
                outcomes.push((id, outcome));
                done.send_modify(|n| *n += 1);
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

/// The replicas whose registrations etcd holds (as the test's own mirror of etcd sees them).
fn registering_replicas(replicas: &Replicas) -> std::collections::BTreeSet<String> {
    let mirror = replicas.etcd().mirror();
    let keys = mirror.keys();
    mirror
        .entries(&keys.endpoints_prefix())
        .iter()
        .filter_map(|(key, _)| {
            keys.parse_endpoints(key)
                .map(|(replica, _)| replica.to_owned())
        })
        .collect()
}

async fn requests_pass(done: &watch::Sender<u64>, n: u64) {
    let mut seen = done.subscribe();
    let target = *seen.borrow() + n;
    tokio::time::timeout(WAIT, seen.wait_for(|d| *d >= target))
        .await
        .unwrap_or_else(|_| panic!("{n} more requests did not complete within {WAIT:?}"))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_loses_no_request_and_the_others_renew_and_enroll() {
    let cluster = EtcdCluster::start(3).await;
    // Certificates of 5 s: every workload renews about every 3.5 s, through whichever replica
    // it reaches.
    let mut replicas = Replicas::start(
        &cluster,
        3,
        Duration::from_secs(5),
        &[("SMI_TEST_LEASE_MS", "3000")],
    )
    .await;
    replicas.apply(ACCESS);
    replicas.apply(&split(50, 50));
    let ledger = Ledger::default();
    let v1 = backend(&replicas, "bookstore-v1", "v1", ledger.clone()).await;
    let v2 = backend(&replicas, "bookstore-v2", "v2", ledger.clone()).await;
    let buyer = replicas
        .mesh("bookbuyer/bookbuyer", &[], &["bookstore/bookstore"])
        .await;
    for service in ["bookstore-v1", "bookstore-v2"] {
        policy_until(&buyer, "both backends", WAIT, |p| {
            !p.endpoints("bookstore", service).is_empty()
        })
        .await;
    }
    let (stop, stopping) = watch::channel(false);
    let done = Arc::new(watch::channel(0u64).0);
    let load = tokio::spawn(load(buyer.clone(), stopping, done.clone()));
    requests_pass(&done, 100).await;

    // Replica 0 is where every workload went first (the addresses are tried in order).
    let watching = |view: &Value| {
        view["workloads"]
            .as_array()
            .map_or(0, |sessions| sessions.len())
    };
    let (_, body) = smi_test_util::admin::get_text(replicas.admin[0], "/debug/workloads").await;
    let on_first = watching(&serde_json::from_str(&body).unwrap());
    assert!(
        on_first >= 3,
        "the three workloads watch through replica 0: {body}"
    );
    let before = registering_replicas(&replicas);
    assert_eq!(
        before.len(),
        1,
        "every registration went through replica 0: {before:?}"
    );
    replicas.kill(0).await;
    requests_pass(&done, 200).await;
    // Its lease runs out (3 s) and etcd drops what it registered; the servers registered again
    // through another replica, so their endpoints never left the views.
    let dead = before.into_iter().next().unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let now = registering_replicas(&replicas);
        if !now.contains(&dead) && !now.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dead replica's registrations did not expire: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The watch moved: a change after the kill reaches the buyer.
    let before = buyer.policy().version;
    replicas.apply(&split(100, 0));
    tokio::time::timeout(WAIT, buyer.changed().wait_for(|v| *v > before))
        .await
        .expect("a change after the kill reaches the buyer through another replica")
        .unwrap();
    // Renewals go on through the others: two more each.
    for mesh in [&buyer, &v1.mesh, &v2.mesh] {
        renewals(mesh, 2, Duration::from_secs(20)).await;
    }
    // A new workload enrolls through the others, and is served.
    let late = replicas
        .mesh("bookbuyer/bookbuyer", &[], &["bookstore/bookstore"])
        .await;
    policy_until(&late, "the backends", WAIT, |p| {
        !p.endpoints("bookstore", "bookstore-v1").is_empty()
    })
    .await;
    requests_pass(&done, 100).await;
    let _ = stop.send(true);
    let outcomes = load.await.unwrap();

    let failed: Vec<_> = outcomes
        .iter()
        .filter(|(_, o)| *o != Ok(StatusCode::OK))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        outcomes.len(),
        &failed[..failed.len().min(5)]
    );
    let ledger = ledger.lock().unwrap();
    for (id, _) in &outcomes {
        let served = ledger.get(id).map_or(0, Vec::len);
        assert_eq!(served, 1, "request {id} was served {served} times");
    }
    eprintln!(
        "{} requests through a replica's death, every one answered 200 once",
        outcomes.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_etcd_leader_killed_writes_resume_under_a_new_one_and_replicas_keep_serving() {
    let mut cluster = EtcdCluster::start(3).await;
    let replicas = Replicas::start(&cluster, 2, LONG_TTL, &[]).await;
    replicas.apply(ACCESS);
    let leader = cluster.leader().await;
    cluster.kill(leader).await;
    let killed = Instant::now();
    // smictl retries on the other members until a leader is elected.
    replicas.apply(&named_split("after-the-leader"));
    let written = killed.elapsed();
    for i in 0..2 {
        view_until(
            &replicas,
            i,
            "the change made without the old leader",
            |v| splits(v).contains(&"bookstore/after-the-leader".to_owned()),
        )
        .await;
    }
    eprintln!("a write {written:?} after the leader was killed");
    cluster.restart(leader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_etcd_gone_replicas_serve_the_last_state_say_so_and_catch_up_when_it_returns() {
    let mut cluster = EtcdCluster::start(3).await;
    // Certificates of 5 s, so that renewals happen during the outage.
    let replicas = Replicas::start(&cluster, 2, Duration::from_secs(5), &[]).await;
    replicas.apply(ACCESS);
    replicas.apply(&split(100, 0));
    let ledger = Ledger::default();
    let _v1 = backend(&replicas, "bookstore-v1", "v1", ledger.clone()).await;
    let buyer = replicas
        .mesh("bookbuyer/bookbuyer", &[], &["bookstore/bookstore"])
        .await;
    policy_until(&buyer, "the backend", WAIT, |p| {
        !p.endpoints("bookstore", "bookstore-v1").is_empty()
    })
    .await;

    cluster.stop_all().await;
    for i in 0..2 {
        view_until(&replicas, i, "saying etcd is unreachable", |v| {
            v["store"]["health"]["connected"] == false
        })
        .await;
    }
    // Served as before: the policy and endpoints the replicas last saw.
    let client = MeshClient::<Full<Bytes>>::new(buyer.clone());
    for n in 0..20 {
        let request = Request::get(BUY)
            .header("x-request-id", format!("gone-{n}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = client.send(request).await.expect("served with etcd gone");
        assert_eq!(response.status(), StatusCode::OK);
    }
    // Renewals need no etcd: the CA is in the replicas' memory.
    renewals(&buyer, 1, Duration::from_secs(20)).await;
    cluster.start_all().await;
    for i in 0..2 {
        view_until(&replicas, i, "following etcd again", |v| {
            v["store"]["health"]["connected"] == true
        })
        .await;
    }
    replicas.apply(&named_split("after-the-outage"));
    for i in 0..2 {
        view_until(&replicas, i, "the change after the outage", |v| {
            splits(v).contains(&"bookstore/after-the-outage".to_owned())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_revision_was_compacted_away_lists_again_and_loses_no_change() {
    let mut cluster = EtcdCluster::start(3).await;
    // Replica 0 knows member 0 only; replica 1 (and smictl) every member.
    let lonely = Replicas::start_on(&cluster.client_urls()[0], 1, LONG_TTL, &[]).await;
    let replicas = Replicas::start_sharing(&lonely, &cluster, 1).await;
    replicas.apply(ACCESS);
    view_until(&lonely, 0, "the access policy", |v| !targets(v).is_empty()).await;
    cluster.kill(0).await;
    view_until(&lonely, 0, "losing its member", |v| {
        v["store"]["health"]["connected"] == false
    })
    .await;
    for n in 0..5 {
        replicas.apply(&named_split(&format!("while-away-{n}")));
    }
    let compacted = cluster.compact_to_latest().await;
    cluster.restart(0).await;
    let view = view_until(&lonely, 0, "every change made while it was away", |v| {
        (0..5).all(|n| splits(v).contains(&format!("bookstore/while-away-{n}")))
    })
    .await;
    assert_eq!(view["store"]["health"]["relists"], 1, "{view}");
    assert!(view["store"]["health"]["revision"].as_i64().unwrap() >= compacted);
    let other = replicas.view(0).await;
    assert_eq!(
        view["version"], other["version"],
        "both replicas at the same state"
    );
}
