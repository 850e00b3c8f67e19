//! No single workload can freeze the mesh. A workload with a valid certificate tries to register
//! 100,000 endpoints against a real control process: the quotas refuse it with clear errors, a
//! revocation still reaches the other workloads as fast as usual, and new workloads still start.
//! With the quota raised, the 100,000 endpoints are held and a workload that calls the service
//! receives them all (its view, over the 4 MiB a workload decodes, arrives in chunks), and still
//! receives the next change.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use smi_client::Mesh;
use smi_client::control::{ControlAddr, connect, control_client, enroll};
use smi_core::proto::v1;
use smi_test_util::bookstore::ACCESS;
use smi_test_util::{Control, LiveControl, join_token, policy_until};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const WAIT: Duration = Duration::from_secs(30);

/// Another TrafficTarget for the bookstore, which the test deletes: the revocation to deliver.
const EXTRA: &str = r#"
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: thief-access-bookstore, namespace: bookstore}
spec:
  destination: {kind: ServiceAccount, name: bookstore, namespace: bookstore}
  sources:
  - {kind: ServiceAccount, name: bookthief, namespace: bookthief}
  rules:
  - {kind: HTTPRouteGroup, name: bookstore-service-routes}
"#;

/// The control over the bookstore policy plus [`EXTRA`]; what these tests add to it.
struct Setup(LiveControl);

impl std::ops::Deref for Setup {
    type Target = LiveControl;
    fn deref(&self) -> &LiveControl {
        &self.0
    }
}

impl Setup {
    async fn start(env: &[(&str, &str)]) -> Setup {
        let files = [("access.yaml", ACCESS), ("extra.yaml", EXTRA)];
        Setup(LiveControl::start(&files, env).await)
    }

    /// Deletes the extra TrafficTarget; returns how long until `destination` applied it.
    async fn revoke_and_time(&self, destination: &Mesh) -> Duration {
        let has_thief = |p: &smi_client::mesh::PolicyState| {
            p.snapshot
                .policy()
                .targets
                .iter()
                .any(|t| t.meta.name == "thief-access-bookstore")
        };
        policy_until(destination, "the extra target", WAIT, has_thief).await;
        let written = Instant::now();
        std::fs::remove_file(self.policy.join("extra.yaml")).unwrap();
        policy_until(destination, "the revocation", WAIT, |p| !has_thief(p)).await;
        written.elapsed()
    }
}

/// Register streams held open by one workload, with heartbeats.
struct Flood {
    open: Vec<mpsc::Sender<v1::RegisterRequest>>,
}

/// `count` endpoints of `flood/flood`, numbered from `first`.
fn endpoints(first: usize, count: usize) -> Vec<v1::EndpointRegistration> {
    (first..first + count)
        .map(|i| v1::EndpointRegistration {
            service: "flood/flood".into(),
            address: format!("10.{}.{}.{}", i >> 16, (i >> 8) & 0xff, i & 0xff),
            port: 8080,
        })
        .collect()
}

impl Flood {
    /// Opens Register streams of `per_stream` endpoints until `total` are registered or the
    /// control refuses; returns the refusal, if any.
    async fn register(
        state: &Path,
        addr: &ControlAddr,
        total: usize,
        per_stream: usize,
    ) -> (Flood, Option<tonic::Status>) {
        let creds = enroll(addr, &join_token(state, "flood/flood", &["flood/flood"]))
            .await
            .unwrap();
        let channel = connect(addr, &creds).await.unwrap();
        let mut flood = Flood { open: Vec::new() };
        for first in (0..total).step_by(per_stream) {
            let (tx, rx) = mpsc::channel(4);
            tx.send(v1::RegisterRequest {
                endpoints: endpoints(first, per_stream),
            })
            .await
            .unwrap();
            let refused = match control_client(channel.clone())
                .register(ReceiverStream::new(rx))
                .await
            {
                Ok(response) => {
                    let mut acks = response.into_inner();
                    match acks.message().await {
                        Ok(Some(_ack)) => None,
                        Ok(None) => Some(tonic::Status::unknown("stream ended")),
                        Err(status) => Some(status),
                    }
                }
                Err(status) => Some(status),
            };
            if let Some(status) = refused {
                return (flood, Some(status));
            }
            // Heartbeats keep the lease (15 s) while the test runs.
            let heartbeat = tx.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(3));
                loop {
                    every.tick().await;
                    if heartbeat
                        .send(v1::RegisterRequest::default())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
            flood.open.push(tx);
        }
        (flood, None)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_workload_registering_100000_endpoints_cannot_freeze_the_mesh() {
    let setup = Setup::start(&[]).await;
    let store = setup.mesh("bookstore/bookstore", &[], &[]).await;
    let before = setup.revoke_and_time(&store).await;
    std::fs::write(setup.policy.join("extra.yaml"), EXTRA).unwrap();

    // 100,000 in one message: refused before it is decoded (over the 256 KiB request limit).
    let (_, refused) = Flood::register(&setup.state, &setup.addr(), 100_000, 100_000).await;
    let refused = refused.expect("one huge registration is refused");
    assert!(
        refused.message().contains("message length too large")
            || refused.code() == tonic::Code::OutOfRange
            || refused.code() == tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    // 100,000 in streams of 1,000: the identity's quota stops it at 4,000.
    let (flood, refused) = Flood::register(&setup.state, &setup.addr(), 100_000, 1_000).await;
    let refused = refused.expect("the quota refuses the rest");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(
        refused
            .message()
            .contains("endpoints registered by spiffe://cluster.local/ns/flood/sa/flood"),
        "{refused:?}"
    );
    assert_eq!(flood.open.len(), 4, "4,000 endpoints held");
    // More than the allowed endpoints in one registration is refused with the limit.
    let (_, refused) = Flood::register(&setup.state, &setup.addr(), 1_001, 1_001).await;
    let refused = refused.expect("over the per-registration quota");
    assert!(refused.message().contains("limit 1000"), "{refused:?}");

    // The revocation reaches the bookstore as before, and a new workload starts.
    let after = setup.revoke_and_time(&store).await;
    eprintln!("revocation delivered in {before:?} before the flood, {after:?} during it");
    assert!(after < Duration::from_secs(5), "{after:?}");
    let started = Instant::now();
    let newcomer = setup
        .mesh("bookbuyer/bookbuyer", &[], &["flood/flood"])
        .await;
    eprintln!("a new workload started in {:?}", started.elapsed());
    assert_eq!(
        newcomer.policy_full().endpoints("flood", "flood").len(),
        4_000
    );
    drop(flood);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_over_the_message_limit_arrives_in_chunks_and_changes_still_arrive() {
    let setup = Setup::start(&[("SMI_TEST_ENDPOINTS_PER_IDENTITY", "200000")]).await;
    let (flood, refused) = Flood::register(&setup.state, &setup.addr(), 100_000, 1_000).await;
    assert!(refused.is_none(), "{refused:?}");
    assert_eq!(flood.open.len(), 100);

    // The bookstore calls flood/flood: its view has 100,000 endpoints (about 7 MB as one
    // message, over the 4 MiB it decodes).
    let started = Instant::now();
    let store = setup
        .mesh("bookstore/bookstore", &[], &["flood/flood"])
        .await;
    policy_until(&store, "all 100,000 endpoints", WAIT, |p| {
        p.endpoints("flood", "flood").len() == 100_000
    })
    .await;
    eprintln!(
        "a view of 100,000 endpoints arrived in {:?}",
        started.elapsed()
    );
    assert_eq!(store.status().watch_failures, 0);
    let revoked = setup.revoke_and_time(&store).await;
    eprintln!("revocation delivered beside a 100,000-endpoint view in {revoked:?}");
    assert!(revoked < Duration::from_secs(10), "{revoked:?}");
    drop(flood);
}
