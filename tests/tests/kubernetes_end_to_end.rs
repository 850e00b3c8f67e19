//! The mesh on Kubernetes, end to end, with real processes and the fake API server
//! (`smi_test_util::kube_api`: real HTTP on loopback, a labelled fake, since no API server can
//! run here): the control reads the bookstore's policy as CRD objects (OSM's v1alpha2
//! TrafficSplit and v1alpha3 TrafficTarget), workloads enroll with their pods' ServiceAccount
//! tokens and are found through EndpointSlices (none registers). Then, timed: a test playing
//! Flagger's part moves the split's weights (traffic follows within 1 s); the TrafficTarget is
//! deleted (access revoked within 1 s); the watch gets `410 Gone` in the middle of a change (no
//! update lost); the API server goes away (the last good policy keeps serving) and comes back
//! (the control catches up).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use smi_client::{Mesh, MeshClient};
use smi_server::AuthorizeLayer;
use smi_test_util::cluster::{BOOKSTORE_POLICY, KubeCluster, PodSpec};
use smi_test_util::{Server, policy_until};

const WAIT: Duration = Duration::from_secs(15);
const WITHIN: Duration = Duration::from_secs(1);
const BUY: &str = "http://bookstore.bookstore/buy-a-book/new";

/// The bookstore on a cluster: two backends (pods bookstore-v1 and bookstore-v2, each in its
/// Service's EndpointSlice) and a buyer that has seen both.
struct Shop {
    cluster: KubeCluster,
    _v1: Server,
    _v2: Server,
    buyer: Mesh,
    client: MeshClient<Full<Bytes>>,
}

async fn backend(cluster: &KubeCluster, version: &'static str) -> Server {
    let name = format!("bookstore-{version}");
    let pod = PodSpec {
        namespace: "bookstore",
        name: &name,
        account: "bookstore",
        labels: &[("app", "bookstore"), ("version", version)],
    };
    let mesh = cluster.pod(&pod, &[]).await;
    let router =
        Router::new().fallback(move |_: HeaderMap| async move { [("x-backend", version)] });
    let app = tower_layer::Layer::layer(&AuthorizeLayer::new(mesh.clone()), router);
    // Registered nowhere: the EndpointSlice is how callers find it.
    let server = Server::on(mesh, &[], app, Default::default()).await;
    cluster.endpoint_slice("bookstore", &name, &name, server.addr);
    server
}

impl Shop {
    async fn open() -> Shop {
        let cluster = KubeCluster::start(BOOKSTORE_POLICY, Duration::from_secs(600)).await;
        let v1 = backend(&cluster, "v1").await;
        let v2 = backend(&cluster, "v2").await;
        let buyer_pod = PodSpec {
            namespace: "bookbuyer",
            name: "bookbuyer",
            account: "bookbuyer",
            labels: &[("app", "bookbuyer")],
        };
        let buyer = cluster.pod(&buyer_pod, &["bookstore/bookstore"]).await;
        for service in ["bookstore-v1", "bookstore-v2"] {
            policy_until(&buyer, "both backends through EndpointSlices", WAIT, |p| {
                !p.endpoints("bookstore", service).is_empty()
            })
            .await;
        }
        let client = MeshClient::new(buyer.clone());
        Shop {
            cluster,
            _v1: v1,
            _v2: v2,
            buyer,
            client,
        }
    }

    /// One purchase: its status and the backend that answered.
    async fn buy(&self) -> (StatusCode, Option<String>) {
        self.try_buy().await.expect("an answer")
    }

    /// [`Shop::buy`], or why it got no answer.
    async fn try_buy(&self) -> Result<(StatusCode, Option<String>), String> {
        let request = Request::get(BUY).body(Full::new(Bytes::new())).unwrap();
        let response = self.client.send(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let backend = response
            .headers()
            .get("x-backend")
            .map(|v| v.to_str().unwrap().to_owned());
        let _ = response.into_body().collect().await;
        Ok((status, backend))
    }

    /// How long until `n` purchases in a row are answered as `wanted` says, buying without
    /// pause; panics after `limit`. A purchase that gets no answer breaks the row: a server
    /// closes the connections of a caller whose access it no longer grants, and a request in
    /// flight on one then fails.
    async fn until(
        &self,
        n: usize,
        limit: Duration,
        wanted: impl Fn(StatusCode, Option<&str>) -> bool,
    ) -> Duration {
        let started = Instant::now();
        let mut in_a_row = 0;
        while in_a_row < n {
            let outcome = self.try_buy().await;
            match &outcome {
                Ok((status, backend)) if wanted(*status, backend.as_deref()) => in_a_row += 1,
                _ => in_a_row = 0,
            }
            assert!(
                started.elapsed() < limit,
                "not within {limit:?}: last {outcome:?}"
            );
        }
        started.elapsed()
    }

    fn split(&self, v1: u32, v2: u32) {
        self.cluster.apply(&format!(
            "apiVersion: split.smi-spec.io/v1alpha2\nkind: TrafficSplit\nmetadata: {{name: bookstore-split, namespace: bookstore}}\nspec:\n  service: bookstore\n  backends:\n  - {{service: bookstore-v1, weight: {v1}}}\n  - {{service: bookstore-v2, weight: {v2}}}\n"
        ));
    }
}

fn served_by(version: &'static str) -> impl Fn(StatusCode, Option<&str>) -> bool {
    move |status, backend| status == StatusCode::OK && backend == Some(version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bookstore_runs_on_crds_service_account_tokens_and_endpoint_slices() {
    let shop = Shop::open().await;
    // Both backends serve (50/50): 40 purchases, each answered, by one or the other.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let (status, backend) = shop.buy().await;
        assert_eq!(status, StatusCode::OK);
        seen.insert(backend.unwrap());
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    // The buyer's certificate is its pod's ServiceAccount, proven by a TokenReview.
    let id = shop.buyer.identity();
    assert_eq!(
        id.to_string(),
        "spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_follows_the_split_weights_that_flagger_writes_within_a_second() {
    let shop = Shop::open().await;
    let mut timings = Vec::new();
    for (v1, v2, to) in [(0, 100, "v2"), (100, 0, "v1"), (0, 100, "v2")] {
        shop.split(v1, v2);
        // 20 in a row from the new backend: the odds of that at 50/50 are one in a million.
        timings.push(shop.until(20, WITHIN, served_by(to)).await);
    }
    eprintln!("the split moved; 20 purchases in a row on the new backend after {timings:?}");
}

/// `smictl check --kubernetes` from bookbuyer to bookstore for a purchase: its exit code.
async fn smictl_check(cluster: &KubeCluster) -> std::process::ExitCode {
    let kubeconfig = cluster.kubeconfig().to_str().unwrap().to_owned();
    // smictl runs its own runtime: off this one.
    tokio::task::spawn_blocking(move || {
        smi_test_util::smictl(&[
            "smictl",
            "check",
            "--kubernetes",
            "--kubeconfig",
            &kubeconfig,
            "--from",
            "bookbuyer/bookbuyer",
            "--to",
            "bookstore/bookstore",
            "--http",
            "GET",
            "/buy-a-book/new",
        ])
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_traffic_target_revokes_access_within_a_second() {
    let shop = Shop::open().await;
    assert_eq!(shop.buy().await.0, StatusCode::OK);
    // smictl reads the same policy from the cluster and says the same.
    assert_eq!(
        smictl_check(&shop.cluster).await,
        std::process::ExitCode::SUCCESS
    );
    shop.cluster
        .api
        .delete(
            "access.smi-spec.io/v1alpha3",
            "TrafficTarget",
            Some("bookstore"),
            "bookbuyer-access-bookstore",
        )
        .expect("the TrafficTarget existed");
    let took = shop
        .until(5, WITHIN, |status, _| status == StatusCode::FORBIDDEN)
        .await;
    eprintln!("access revoked {took:?} after the TrafficTarget was deleted");
    assert_eq!(
        smictl_check(&shop.cluster).await,
        std::process::ExitCode::from(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_that_gets_410_gone_in_the_middle_of_a_change_loses_no_update() {
    let shop = Shop::open().await;
    let lists_before = lists_of_splits(&shop);
    // A change, then the history forgotten and every watch cut: the control's watch resumes
    // from a resourceVersion the server no longer has (410 Gone), lists again, and must end
    // with the second change too.
    shop.split(100, 0);
    shop.cluster.api.compact();
    shop.cluster.api.break_watches();
    shop.split(0, 100);
    let took = shop.until(20, WAIT, served_by("v2")).await;
    assert!(
        lists_of_splits(&shop) > lists_before,
        "the control listed the TrafficSplits again after the 410"
    );
    eprintln!("after 410 Gone, the last change applied {took:?} later");
}

/// How many times the control listed TrafficSplits (not watches).
fn lists_of_splits(shop: &Shop) -> usize {
    shop.cluster
        .api
        .requests()
        .iter()
        .filter(|r| r.path().ends_with("/trafficsplits") && !r.is_watch())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_api_server_gone_the_last_policy_serves_and_the_control_catches_up() {
    let shop = Shop::open().await;
    shop.cluster.api.stop().await;
    // The mesh keeps serving what it had: 20 purchases, all answered.
    for _ in 0..20 {
        assert_eq!(shop.buy().await.0, StatusCode::OK);
    }
    // A change made while the control cannot see it, applied once the server is back.
    shop.split(0, 100);
    let back = Instant::now();
    shop.cluster.api.start_again().await;
    let took = shop.until(20, WAIT, served_by("v2")).await;
    eprintln!(
        "the control caught up {took:?} after the API server came back ({:?} since)",
        back.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_resource_gets_an_event_and_blocks_nothing_else() {
    let shop = Shop::open().await;
    shop.cluster.apply(
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: broken, namespace: bookstore}\nspec:\n  service: bookstore\n  backends:\n  - {service: bookstore-v1, weight: -5}\n",
    );
    // The Event names the object and the field (the fake records what the control posts).
    let deadline = Instant::now() + WAIT;
    let event = loop {
        let found =
            shop.cluster.api.events().into_iter().find(|e| {
                e["involvedObject"]["name"] == "broken" && e["reason"] == "InvalidPolicy"
            });
        if let Some(event) = found {
            break event;
        }
        assert!(
            Instant::now() < deadline,
            "no InvalidPolicy Event for the broken TrafficSplit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let message = event["message"].as_str().unwrap();
    assert!(message.contains("weight"), "{message}");
    assert_eq!(event["type"], "Warning");
    // The rest of the policy serves, and moves: a valid change after the broken one applies.
    assert_eq!(shop.buy().await.0, StatusCode::OK);
    shop.split(0, 100);
    shop.until(20, WITHIN, served_by("v2")).await;
}
