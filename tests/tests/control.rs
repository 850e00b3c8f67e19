#![allow(clippy::unwrap_used, clippy::expect_used)]

//! The control service end to end: a real process-internal server on 127.0.0.1, real TLS, real
//! gRPC clients (smi-client), real files. Every wait is on an event, bounded by a timeout.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use smi_client::control::{ClientError, ControlAddr, Credentials, connect, enroll, renew};
use smi_control::ca::CaStore;
use smi_control::enroll::JoinTokens;
use smi_control::serve::{Running, ServeConfig, start};
use smi_core::ServiceRef;
use smi_core::proto::v1::{self, control_client::ControlClient};
use smi_tls::peer_identity;
use tonic::Streaming;

const WAIT: Duration = Duration::from_secs(5);
const ACCESS: &str = include_str!("../../examples/bookstore/policy/bookstore-access.yaml");
const SPLIT: &str = include_str!("../../examples/bookstore/policy/bookstore-split.yaml");

struct Mesh {
    _dir: tempfile::TempDir,
    policy: PathBuf,
    state: PathBuf,
    control: Running,
    addr: ControlAddr,
}

impl Mesh {
    async fn start() -> Mesh {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy");
        let state = dir.path().join("state");
        fs::create_dir_all(&policy).unwrap();
        fs::write(policy.join("access.yaml"), ACCESS).unwrap();
        let control = start_control(&policy, &state).await;
        let addr = ControlAddr::parse(&control.api_addr.to_string()).unwrap();
        Mesh {
            _dir: dir,
            policy,
            state,
            control,
            addr,
        }
    }

    fn token(&self, identity: &str, serves: &[&str], ttl: Duration) -> String {
        token_for(&self.state, identity, serves, ttl)
    }

    async fn enroll(&self, identity: &str, serves: &[&str]) -> Credentials {
        enroll(
            &self.addr,
            &self.token(identity, serves, Duration::from_secs(600)),
        )
        .await
        .unwrap()
    }

    async fn client(&self, creds: &Credentials) -> ControlClient<tonic::transport::Channel> {
        ControlClient::new(connect(&self.addr, creds).await.unwrap())
    }

    async fn admin(&self, path: &str) -> Value {
        get_json(self.control.admin_addr, path).await
    }

    /// Polls an admin endpoint (it has no push) until `done`, bounded by WAIT.
    async fn admin_until(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        tokio::time::timeout(WAIT, async {
            loop {
                let value = self.admin(path).await;
                if done(&value) {
                    return value;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{path} did not reach the expected state within 5 s"))
    }
}

async fn start_control(policy: &Path, state: &Path) -> Running {
    start(ServeConfig {
        policy_dir: policy.to_owned(),
        state_dir: state.to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        admin: "127.0.0.1:0".parse().unwrap(),
        certificate_ttl: Duration::from_secs(3600),
        lease: Duration::from_secs(2),
        ..ServeConfig::default()
    })
    .await
    .unwrap()
}

fn token_for(state: &Path, identity: &str, serves: &[&str], ttl: Duration) -> String {
    let store = CaStore::new(state);
    let ca = store.open_or_init("cluster.local").unwrap();
    let tokens = JoinTokens::new(&store.token_key().unwrap(), "cluster.local");
    let serves: Vec<ServiceRef> = serves.iter().map(|s| s.parse().unwrap()).collect();
    tokens.create(&identity.parse().unwrap(), &serves, ttl, ca.bundle())
}

async fn get_json(addr: std::net::SocketAddr, path: &str) -> Value {
    use http_body_util::{BodyExt, Empty};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", "localhost")
        .body(Empty::<hyper::body::Bytes>::new())
        .unwrap();
    let body = sender
        .send_request(req)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
}

async fn next(stream: &mut Streaming<v1::PolicyUpdate>) -> v1::PolicyUpdate {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("an update within 5 s")
        .expect("a healthy stream")
        .expect("the stream stays open")
}

/// Reads updates until one satisfies `done` (updates in between are fine), bounded by WAIT.
async fn until(
    stream: &mut Streaming<v1::PolicyUpdate>,
    done: impl Fn(&v1::PolicyUpdate) -> bool,
) -> v1::PolicyUpdate {
    tokio::time::timeout(WAIT, async {
        loop {
            let update = next(stream).await;
            if done(&update) {
                return update;
            }
        }
    })
    .await
    .expect("the expected update within 5 s")
}

fn targets(update: &v1::PolicyUpdate) -> Vec<String> {
    update.policy.as_ref().map_or_else(Vec::new, |p| {
        p.traffic_targets
            .iter()
            .map(|t| t.meta.as_ref().unwrap().name.clone())
            .collect()
    })
}

fn refused(result: Result<Credentials, ClientError>) -> String {
    match result {
        Err(ClientError::Refused(message)) => message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

// === enrollment ===

#[tokio::test]
async fn a_join_token_yields_a_certificate_for_exactly_its_identity() {
    let mesh = Mesh::start().await;
    let creds = mesh
        .enroll("bookstore/bookstore", &["bookstore/bookstore-v1"])
        .await;
    assert_eq!(
        creds.spiffe_id().to_string(),
        "spiffe://cluster.local/ns/bookstore/sa/bookstore"
    );
    let peer = peer_identity(&creds.chain_der()[0].clone().into()).unwrap();
    assert_eq!(peer.spiffe_id, *creds.spiffe_id());
    assert_eq!(
        peer.serves,
        vec![ServiceRef::new("bookstore", "bookstore-v1")]
    );
    mesh.control.shutdown().await;
}

#[tokio::test]
async fn expired_forged_and_foreign_tokens_are_refused_with_a_reason() {
    let mesh = Mesh::start().await;
    let expired = mesh.token("a/b", &[], Duration::ZERO);
    assert!(refused(enroll(&mesh.addr, &expired).await).contains("expired"));

    // A token from another control service (another state directory, so another key) pins
    // the other CA: the TLS handshake with this control fails before any token is sent.
    let other = tempfile::tempdir().unwrap();
    let foreign = token_for(other.path(), "a/b", &[], Duration::from_secs(60));
    assert!(matches!(
        enroll(&mesh.addr, &foreign).await,
        Err(ClientError::Connect { .. })
    ));

    // The same foreign token, but pinning this control's CA: refused by the control itself.
    let parsed = smi_core::token::parse(&foreign).unwrap();
    let our_token = mesh.token("a/b", &[], Duration::from_secs(60));
    let ours = smi_core::token::parse(&our_token).unwrap();
    let mut claims = parsed.claims.clone();
    claims.ca = ours.claims.ca.clone();
    let repinned = smi_core::token::assemble(&claims.signing_input(), &parsed.mac);
    assert!(refused(enroll(&mesh.addr, &repinned).await).contains("another control service"));

    // A token altered to claim another identity.
    let mut claims = ours.claims.clone();
    claims.sub = "kube-system/admin".into();
    let forged = smi_core::token::assemble(&claims.signing_input(), &ours.mac);
    assert!(refused(enroll(&mesh.addr, &forged).await).contains("signature does not verify"));
    mesh.control.shutdown().await;
}

#[tokio::test]
async fn a_csr_asking_for_another_identity_is_refused() {
    let mesh = Mesh::start().await;
    let token = mesh.token("bookbuyer/bookbuyer", &[], Duration::from_secs(60));
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::URI(
        "spiffe://cluster.local/ns/bookstore/sa/bookstore"
            .try_into()
            .unwrap(),
    )];
    let csr = params.serialize_request(&key).unwrap();
    let creds = mesh.enroll("bookbuyer/bookbuyer", &[]).await;
    let status = mesh
        .client(&creds)
        .await
        .certify(v1::CertifyRequest {
            csr_der: csr.der().to_vec(),
            token,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(
        status
            .message()
            .contains("asks for spiffe://cluster.local/ns/bookstore/sa/bookstore"),
        "{}",
        status.message()
    );
    mesh.control.shutdown().await;
}

#[tokio::test]
async fn a_workload_renews_over_mtls_without_a_token() {
    let mesh = Mesh::start().await;
    let first = mesh
        .enroll("bookbuyer/bookbuyer", &["bookbuyer/bookbuyer"])
        .await;
    let second = renew(&mesh.addr, &first).await.unwrap();
    assert_eq!(second.spiffe_id(), first.spiffe_id());
    assert_ne!(second.chain_der()[0], first.chain_der()[0]);
    let peer = peer_identity(&second.chain_der()[0].clone().into()).unwrap();
    assert_eq!(peer.serves, vec![ServiceRef::new("bookbuyer", "bookbuyer")]);
    mesh.control.shutdown().await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_at_the_handshake() {
    let mesh = Mesh::start().await;
    let other = Mesh::start().await;
    let theirs = other.enroll("bookbuyer/bookbuyer", &[]).await;
    // Trusting our CA but presenting the other CA's certificate.
    let ours = mesh.enroll("bookbuyer/bookbuyer", &[]).await;
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ours.bundle_pem()))
        .identity(tonic::transport::Identity::from_pem(
            theirs.chain_pem(),
            theirs.key_pem(),
        ))
        .domain_name("localhost");
    let channel =
        tonic::transport::Endpoint::from_shared(format!("https://{}", mesh.control.api_addr))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect_lazy();
    let result = ControlClient::new(channel)
        .watch(v1::WatchRequest::default())
        .await;
    assert!(
        result.is_err(),
        "a foreign certificate must not get a stream"
    );
    // And without any certificate, Watch is refused as unauthenticated.
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ours.bundle_pem()))
        .domain_name("localhost");
    let channel =
        tonic::transport::Endpoint::from_shared(format!("https://{}", mesh.control.api_addr))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect_lazy();
    let status = ControlClient::new(channel)
        .watch(v1::WatchRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    mesh.control.shutdown().await;
    other.control.shutdown().await;
}

#[tokio::test]
async fn a_restart_keeps_the_ca_and_outstanding_tokens_valid() {
    let mesh = Mesh::start().await;
    let token = mesh.token("bookbuyer/bookbuyer", &[], Duration::from_secs(600));
    let bundle = mesh.control.bundle_pem.clone();
    let creds = mesh.enroll("bookbuyer/bookbuyer", &[]).await;
    mesh.control.shutdown().await;

    let control = start_control(&mesh.policy, &mesh.state).await;
    assert_eq!(control.bundle_pem, bundle);
    let addr = ControlAddr::parse(&control.api_addr.to_string()).unwrap();
    let again = enroll(&addr, &token).await.unwrap();
    assert_eq!(again.bundle_der(), creds.bundle_der());
    // The certificate from before the restart still authenticates.
    let mut stream = ControlClient::new(connect(&addr, &creds).await.unwrap())
        .watch(v1::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    next(&mut stream).await;
    control.shutdown().await;
}

// === policy streaming ===

#[tokio::test]
async fn a_workload_gets_its_policy_then_each_change_within_a_second() {
    let mesh = Mesh::start().await;
    let creds = mesh.enroll("bookstore/bookstore", &[]).await;
    let mut stream = mesh
        .client(&creds)
        .await
        .watch(v1::WatchRequest {
            services: vec!["bookstore/bookstore".into()],
            workload: "test".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut stream).await;
    assert_eq!(targets(&first), vec!["bookbuyer-access-bookstore"]);
    assert!(first.policy.as_ref().unwrap().traffic_splits.is_empty());

    let written = std::time::Instant::now();
    fs::write(mesh.policy.join("split.yaml"), SPLIT).unwrap();
    let update = until(&mut stream, |u| {
        !u.policy.as_ref().unwrap().traffic_splits.is_empty()
    })
    .await;
    let elapsed = written.elapsed();
    assert!(update.version > first.version);
    assert!(
        elapsed < Duration::from_secs(1),
        "the change took {elapsed:?}"
    );
    mesh.control.shutdown().await;
}

#[tokio::test]
async fn a_broken_file_is_reported_while_the_last_good_policy_keeps_serving() {
    let mesh = Mesh::start().await;
    let creds = mesh.enroll("bookstore/bookstore", &[]).await;
    let mut client = mesh.client(&creds).await;
    let everything = v1::WatchRequest {
        services: vec!["*".into()],
        workload: String::new(),
    };
    let mut stream = client.watch(everything.clone()).await.unwrap().into_inner();
    let first = next(&mut stream).await;

    fs::write(mesh.policy.join("broken.yaml"), "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: bad}\nspec: {service: x, backends: [{service: y, weight: -1}]}\n").unwrap();
    let policy = mesh
        .admin_until("/debug/policy", |p| {
            p["status"]["errors"]
                .as_array()
                .is_some_and(|e| !e.is_empty())
        })
        .await;
    let errors = policy["status"]["errors"].as_array().unwrap();
    assert!(
        errors[0]
            .as_str()
            .unwrap()
            .contains("broken.yaml:doc 1: TrafficSplit default/bad: spec.backends[0].weight"),
        "{errors:?}"
    );
    let metrics = mesh.admin("/metrics").await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("smi_control_policy_errors 1")
    );
    // Still serving the last good policy: a new subscriber gets it.
    let mut fresh = client.watch(everything).await.unwrap().into_inner();
    let serving = next(&mut fresh).await;
    assert_eq!(serving.version, first.version);
    assert_eq!(targets(&serving), targets(&first));

    fs::write(mesh.policy.join("broken.yaml"), SPLIT).unwrap();
    let fixed = until(&mut stream, |u| {
        !u.policy.as_ref().unwrap().traffic_splits.is_empty()
    })
    .await;
    assert!(fixed.version > first.version);
    // The admin view follows (it is written just after the update is published).
    mesh.admin_until("/debug/policy", |p| {
        p["status"]["errors"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    mesh.control.shutdown().await;
}

#[tokio::test]
async fn acknowledgements_and_rejections_show_in_the_admin_view() {
    let mesh = Mesh::start().await;
    let creds = mesh.enroll("bookstore/bookstore", &[]).await;
    let mut client = mesh.client(&creds).await;
    let mut stream = client
        .watch(v1::WatchRequest {
            services: vec![],
            workload: "pod-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let update = next(&mut stream).await;
    client
        .ack(v1::AckRequest {
            version: update.version,
            accepted: false,
            error: "HTTPRouteGroup x/y: matches[0].path_regex: invalid".into(),
            workload: "pod-1".into(),
        })
        .await
        .unwrap();
    let view = mesh.admin("/debug/workloads").await;
    let w = &view["workloads"][0];
    assert_eq!(
        w["identity"],
        "spiffe://cluster.local/ns/bookstore/sa/bookstore"
    );
    assert_eq!(w["workload"], "pod-1");
    assert_eq!(w["acked_version"], update.version);
    assert!(w["rejected"].as_str().unwrap().contains("path_regex"));
    assert!(w["certificate_expires_unix"].as_u64().unwrap() > 0);
    mesh.control.shutdown().await;
}

#[tokio::test]
async fn root_rotation_reaches_subscribers_with_both_roots_in_the_bundle() {
    let mesh = Mesh::start().await;
    let creds = mesh.enroll("bookstore/bookstore", &[]).await;
    let mut stream = mesh
        .client(&creds)
        .await
        .watch(v1::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut stream).await.trust_bundle_der.len(), 1);
    CaStore::new(&mesh.state)
        .rotate("cluster.local", Duration::from_secs(3600))
        .unwrap();
    let update = until(&mut stream, |u| u.trust_bundle_der.len() == 2).await;
    // The old root, which signed the workload's certificate, is still trusted.
    assert!(update.trust_bundle_der.contains(&creds.bundle_der()[0]));
    // The old certificate still renews, once the workload trusts the published bundle (the
    // control's own certificate may already chain to the new root).
    let creds = creds.with_bundle(update.trust_bundle_der.clone()).unwrap();
    let renewed = renew(&mesh.addr, &creds).await.unwrap();
    assert_eq!(renewed.bundle_der().len(), 2);
    mesh.control.shutdown().await;
}

// === endpoint registry ===

async fn register(
    client: &mut ControlClient<tonic::transport::Channel>,
    service: &str,
    port: u32,
) -> Result<
    (
        tokio::sync::mpsc::Sender<v1::RegisterRequest>,
        Streaming<v1::RegisterResponse>,
    ),
    tonic::Status,
> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(v1::RegisterRequest {
        endpoints: vec![v1::EndpointRegistration {
            service: service.into(),
            address: "127.0.0.1".into(),
            port,
        }],
    })
    .await
    .unwrap();
    let responses = client
        .register(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    Ok((tx, responses))
}

fn endpoints_of<'a>(update: &'a v1::PolicyUpdate, service: &str) -> Vec<&'a v1::Endpoint> {
    update
        .endpoints
        .iter()
        .filter(|e| format!("{}/{}", e.namespace, e.name) == service)
        .flat_map(|e| e.endpoints.iter())
        .collect()
}

#[tokio::test]
async fn registered_endpoints_reach_callers_with_their_identity_and_leave_with_the_stream() {
    let mesh = Mesh::start().await;
    let server = mesh
        .enroll("bookstore/bookstore", &["bookstore/bookstore-v1"])
        .await;
    let caller = mesh.enroll("bookbuyer/bookbuyer", &[]).await;
    let mut watch = mesh
        .client(&caller)
        .await
        .watch(v1::WatchRequest {
            services: vec!["bookstore/bookstore-v1".into()],
            workload: "buyer".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(endpoints_of(&next(&mut watch).await, "bookstore/bookstore-v1").is_empty());

    let mut server_client = mesh.client(&server).await;
    let (heartbeats, mut responses) = register(&mut server_client, "bookstore/bookstore-v1", 8080)
        .await
        .unwrap();
    let ack = tokio::time::timeout(WAIT, responses.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(ack.registered, 1);
    let update = until(&mut watch, |u| {
        !endpoints_of(u, "bookstore/bookstore-v1").is_empty()
    })
    .await;
    let ep = endpoints_of(&update, "bookstore/bookstore-v1")[0].clone();
    assert_eq!((ep.address.as_str(), ep.port), ("127.0.0.1", 8080));
    assert_eq!(
        ep.identity,
        "spiffe://cluster.local/ns/bookstore/sa/bookstore"
    );

    drop(heartbeats);
    drop(responses);
    until(&mut watch, |u| {
        endpoints_of(u, "bookstore/bookstore-v1").is_empty()
    })
    .await;
    mesh.control.shutdown().await;
}

#[tokio::test]
async fn a_registration_for_a_service_the_credential_does_not_grant_is_refused() {
    let mesh = Mesh::start().await;
    let thief = mesh
        .enroll("bookthief/bookthief", &["bookthief/bookthief"])
        .await;
    let mut client = mesh.client(&thief).await;
    let status = register(&mut client, "bookstore/bookstore-v1", 8080)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(
        status
            .message()
            .contains("does not grant serving bookstore/bookstore-v1"),
        "{}",
        status.message()
    );
    mesh.control.shutdown().await;
}

#[tokio::test]
async fn endpoints_disappear_when_heartbeats_stop_within_the_lease() {
    let mesh = Mesh::start().await;
    let server = mesh
        .enroll("bookstore/bookstore", &["bookstore/bookstore-v1"])
        .await;
    let caller = mesh.enroll("bookbuyer/bookbuyer", &[]).await;
    let mut watch = mesh
        .client(&caller)
        .await
        .watch(v1::WatchRequest {
            services: vec!["*".into()],
            workload: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut server_client = mesh.client(&server).await;
    // Keep the stream open but silent: the 2 s lease lapses.
    let (_silent, _responses) = register(&mut server_client, "bookstore/bookstore-v1", 9000)
        .await
        .unwrap();
    until(&mut watch, |u| {
        !endpoints_of(u, "bookstore/bookstore-v1").is_empty()
    })
    .await;
    until(&mut watch, |u| {
        endpoints_of(u, "bookstore/bookstore-v1").is_empty()
    })
    .await;
    mesh.control.shutdown().await;
}
