//! Enrollment on Kubernetes, end to end: a pod proves who it is with its projected
//! ServiceAccount token, which the control reviews (TokenReview) and checks against the pod it
//! is bound to, through a fake Kubernetes API server (real HTTP on 127.0.0.1,
//! `smi_test_util::kube_api`) and an in-process control (real TLS, real gRPC clients).
//!
//! The certificate is the pod's ServiceAccount and grants the Services that select the pod;
//! each way of failing is refused with a message that says what to do (`UNAVAILABLE` when the
//! API server cannot be asked); a workload renews with its rotated token, which the control
//! reviews afresh. Every wait is on an event, bounded by a timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use smi_client::control::{ClientError, ControlAddr, Credentials, connect, enroll_with_ca};
use smi_client::{Mesh, MeshConfig};
use smi_control::kubernetes::token_review::TokenReviewAuthenticator;
use smi_control::serve::{ControlBuilder, Running, ServeConfig};
use smi_core::ServiceRef;
use smi_core::proto::v1::{self, control_client::ControlClient};
use smi_test_util::kube_api::{FakeApiServer, TokenIdentity};
use smi_test_util::{TRUST_DOMAIN, assert_status, refused, renewals, status_until};
use smi_tls::peer_identity;

const NS: &str = "bookstore";
const POD: &str = "bookstore-v1-5d8f7c9b4-x2x7q";
const ACCOUNT: &str = "bookstore-v1";
const WAIT: Duration = Duration::from_secs(20);

/// A cluster with the bookstore pod (ServiceAccount bookstore-v1, labels app=bookstore and
/// version=v1) and Services that select it or not; a control that reviews tokens with it.
struct Cluster {
    fake: FakeApiServer,
    running: Option<Running>,
    addr: ControlAddr,
    bundle_pem: String,
    pod_uid: String,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        Cluster::start_with(Duration::from_secs(3600), Duration::from_secs(5)).await
    }

    /// Certificates live `ttl`; a call to the API server may take `timeout`.
    async fn start_with(ttl: Duration, timeout: Duration) -> Cluster {
        let fake = FakeApiServer::start().await;
        fake.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
        for account in [ACCOUNT, "bookthief"] {
            fake.apply(json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": account, "namespace": NS}}));
        }
        let pod = fake.apply(pod(
            POD,
            ACCOUNT,
            &[("app", "bookstore"), ("version", "v1")],
        ));
        for (name, selector) in [
            ("bookstore", json!({"app": "bookstore"})),
            ("bookstore-v1", json!({"app": "bookstore", "version": "v1"})),
            ("bookstore-v2", json!({"app": "bookstore", "version": "v2"})),
            ("by-hand", json!({})),
        ] {
            fake.apply(service(name, selector));
        }
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = fake.kubeconfig(dir.path());
        let client = smi_control::kubernetes::client(Some(&kubeconfig))
            .await
            .unwrap();
        let policy = dir.path().join("policy");
        std::fs::create_dir_all(&policy).unwrap();
        let loopback = "127.0.0.1:0".parse().unwrap();
        let config = ServeConfig {
            policy_dir: policy,
            state_dir: dir.path().join("state"),
            listen: loopback,
            admin: loopback,
            certificate_ttl: ttl,
            ..ServeConfig::default()
        };
        let running = ControlBuilder::new(config)
            .authenticator(TokenReviewAuthenticator::new(client).timeout(timeout))
            .start()
            .await
            .unwrap();
        Cluster {
            addr: ControlAddr::parse(&running.api_addr.to_string()).unwrap(),
            bundle_pem: running.bundle_pem.clone(),
            pod_uid: uid(&pod),
            running: Some(running),
            fake,
            dir,
        }
    }

    /// A fresh token (a JWT's shape, claiming `audiences`) for `account`, bound to the pod
    /// `pod` with uid `pod_uid`, that the API server knows.
    fn token(&self, account: &str, audiences: &[&str], pod: (&str, &str)) -> String {
        let token = jwt(audiences);
        let identity =
            TokenIdentity::service_account(NS, account, audiences).bound_to_pod(pod.0, pod.1);
        self.fake.add_token(&token, identity);
        token
    }

    /// A token of the bookstore pod for audience smi-mesh.
    fn pod_token(&self) -> String {
        self.token(ACCOUNT, &["smi-mesh"], (POD, &self.pod_uid))
    }

    async fn enroll(&self, token: &str) -> Result<Credentials, ClientError> {
        enroll_with_ca(&self.addr, token, &self.bundle_pem, TRUST_DOMAIN).await
    }

    async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

fn pod(name: &str, account: &str, labels: &[(&str, &str)]) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {"serviceAccountName": account, "containers": [{"name": "app", "image": "app"}]}})
}

fn service(name: &str, selector: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
        "spec": {"selector": selector, "ports": [{"port": 80}]}})
}

fn uid(object: &Value) -> String {
    object["metadata"]["uid"]
        .as_str()
        .expect("a uid")
        .to_owned()
}

/// A token of a JWT's form whose claims name `audiences` (the fake's table decides whether it
/// is good; the control reads the claims only to explain a refusal).
fn jwt(audiences: &[&str]) -> String {
    let claims = json!({"aud": audiences, "jti": rand::random::<u64>()}).to_string();
    [
        r#"{"alg":"RS256","typ":"JWT"}"#,
        claims.as_str(),
        "signature",
    ]
    .map(|part| base64url(part.as_bytes()))
    .join(".")
}

/// Unpadded base64url (RFC 4648 section 5).
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn serves(credentials: &Credentials) -> Vec<ServiceRef> {
    peer_identity(&credentials.chain_der()[0].clone().into())
        .unwrap()
        .serves
}

async fn register(
    credentials: &Credentials,
    addr: &ControlAddr,
    service: &str,
) -> Result<u32, tonic::Status> {
    let mut client = ControlClient::new(connect(addr, credentials).await.unwrap());
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(v1::RegisterRequest {
        endpoints: vec![v1::EndpointRegistration {
            service: service.into(),
            address: "127.0.0.1".into(),
            port: 8080,
        }],
    })
    .await
    .unwrap();
    let mut responses = client
        .register(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    let first = responses.message().await?.expect("a first answer");
    Ok(first.registered)
}

#[tokio::test]
async fn a_pod_token_buys_its_service_account_and_the_services_that_select_it() {
    let cluster = Cluster::start().await;
    let credentials = cluster.enroll(&cluster.pod_token()).await.unwrap();
    assert_eq!(
        credentials.spiffe_id().to_string(),
        "spiffe://cluster.local/ns/bookstore/sa/bookstore-v1"
    );
    let peer = peer_identity(&credentials.chain_der()[0].clone().into()).unwrap();
    assert_eq!(
        peer.serves,
        vec![
            ServiceRef::new(NS, "bookstore"),
            ServiceRef::new(NS, "bookstore-v1")
        ],
        "not bookstore-v2 (version v2), not by-hand (no selector)"
    );
    let names = peer.workload.expect("the pod's names");
    assert_eq!(
        (names.name.as_str(), names.pod.as_str()),
        ("bookstore-v1", POD)
    );
    let registered = register(&credentials, &cluster.addr, "bookstore/bookstore-v1").await;
    assert_eq!(registered.unwrap(), 1);
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused_naming_the_audience_to_mount() {
    let cluster = Cluster::start().await;
    let api = "https://kubernetes.default.svc.cluster.local";
    let token = cluster.token(ACCOUNT, &[api], (POD, &cluster.pod_uid));
    let message = refused(cluster.enroll(&token).await);
    assert!(message.starts_with("Unauthenticated"), "{message}");
    assert!(
        message.contains(&format!(
            "the token is for audiences [{api}]; mount a projected token with audience smi-mesh"
        )),
        "{message}"
    );
    let unknown = refused(cluster.enroll(&jwt(&["smi-mesh"])).await);
    assert!(
        unknown.contains("did not authenticate the ServiceAccount token ([invalid bearer token"),
        "{unknown}"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn the_token_of_a_deleted_or_replaced_pod_is_refused() {
    let cluster = Cluster::start().await;
    let token = cluster.pod_token();
    cluster.enroll(&token).await.expect("the pod is there");

    cluster
        .fake
        .delete("v1", "pods", Some(NS), POD)
        .expect("the pod");
    let gone = refused(cluster.enroll(&token).await);
    assert!(
        gone.contains(&format!("pod {NS}/{POD}, which the token is bound to, no longer exists (not found): a deleted pod gets no certificate")),
        "{gone}"
    );

    // A new pod of the same name is another pod: the old one's token is not its.
    let again = cluster
        .fake
        .apply(pod(POD, ACCOUNT, &[("app", "bookstore")]));
    assert_ne!(uid(&again), cluster.pod_uid);
    let replaced = refused(cluster.enroll(&token).await);
    assert!(
        replaced.contains("no longer exists (the pod of that name now has uid"),
        "{replaced}"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_token_of_another_service_account_than_the_pods_is_refused() {
    let cluster = Cluster::start().await;
    let token = cluster.token("bookthief", &["smi-mesh"], (POD, &cluster.pod_uid));
    let message = refused(cluster.enroll(&token).await);
    assert!(
        message.contains(&format!("pod {NS}/{POD} runs as ServiceAccount bookstore/bookstore-v1, but the token is for bookstore/bookthief")),
        "{message}"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_token_review_is_unavailable_so_that_workloads_retry() {
    // kube-rs retries a 503 with backoff; the control's bound on the call cuts it short.
    let cluster = Cluster::start_with(Duration::from_secs(3600), Duration::from_secs(1)).await;
    let token = cluster.pod_token();
    cluster
        .fake
        .set_unavailable("/apis/authentication.k8s.io", true);
    let message = refused(cluster.enroll(&token).await);
    assert!(message.starts_with("Unavailable"), "{message}");
    assert!(
        message
            .contains("the Kubernetes API cannot be asked now (TokenReview: no answer within 1s)"),
        "{message}"
    );

    cluster
        .fake
        .set_unavailable("/apis/authentication.k8s.io", false);
    cluster.enroll(&token).await.expect("the API answers again");

    cluster.fake.stop().await;
    let stopped = refused(cluster.enroll(&token).await);
    assert!(stopped.starts_with("Unavailable"), "{stopped}");
    assert!(stopped.contains("(TokenReview: "), "{stopped}");
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_pod_may_register_only_the_services_that_select_it() {
    let cluster = Cluster::start().await;
    let thief = cluster
        .fake
        .apply(pod("bookthief-0", "bookthief", &[("app", "bookthief")]));
    let token = cluster.token("bookthief", &["smi-mesh"], ("bookthief-0", &uid(&thief)));
    let credentials = cluster.enroll(&token).await.unwrap();
    assert_eq!(
        credentials.spiffe_id().to_string(),
        "spiffe://cluster.local/ns/bookstore/sa/bookthief"
    );
    assert_eq!(
        serves(&credentials),
        vec![],
        "no Service selects app=bookthief"
    );
    let status = register(&credentials, &cluster.addr, "bookstore/bookstore-v1")
        .await
        .unwrap_err();
    assert_status(
        &status,
        tonic::Code::PermissionDenied,
        "does not grant serving bookstore/bookstore-v1",
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_workload_renews_with_its_rotated_token_and_by_certificate_when_the_file_is_gone() {
    let cluster = Cluster::start_with(Duration::from_secs(3), Duration::from_secs(5)).await;
    let file: PathBuf = cluster.dir.path().join("token");
    let first = cluster.pod_token();
    std::fs::write(&file, &first).unwrap();
    let config = MeshConfig::new(cluster.addr.clone(), first.clone())
        .token_file(&file)
        .ca_bundle(cluster.bundle_pem.clone())
        .namespace(NS)
        .names("bookstore-v1", POD)
        .calls(["bookstore/bookstore"]);
    let mesh = tokio::time::timeout(WAIT, Mesh::start(config))
        .await
        .expect("started in time")
        .expect("started");
    assert_eq!(
        mesh.identity().to_string(),
        "spiffe://cluster.local/ns/bookstore/sa/bookstore-v1"
    );

    // The kubelet rotates the token; the first one stops working. A Service that selects the
    // pod appears: only a renewal that the control reviews afresh can grant it.
    let rotated = cluster.pod_token();
    std::fs::write(&file, &rotated).unwrap();
    let revoked = TokenIdentity::service_account(NS, ACCOUNT, &["somewhere-else"]);
    cluster.fake.add_token(&first, revoked);
    cluster
        .fake
        .apply(service("bookstore-canary", json!({"app": "bookstore"})));
    let canary = ServiceRef::new(NS, "bookstore-canary");
    status_until(&mesh, "a renewal granting bookstore-canary", WAIT, |m| {
        serves(&m.credentials()).contains(&canary)
    })
    .await;

    // With the file gone (and the last token no good either), renewal goes on by certificate.
    std::fs::remove_file(&file).unwrap();
    let revoked = TokenIdentity::service_account(NS, ACCOUNT, &["somewhere-else"]);
    cluster.fake.add_token(&rotated, revoked);
    renewals(&mesh, 2, WAIT).await;
    drop(mesh);
    cluster.shutdown().await;
}
