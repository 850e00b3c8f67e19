//! The TrafficMetrics API as a Kubernetes aggregated API, end to end over real TLS on
//! 127.0.0.1: the control's `AggregatedApi` reads the front proxy from the fake API server's
//! ConfigMap `kube-system/extension-apiserver-authentication` and asks it SubjectAccessReviews;
//! the tests play kube-apiserver's proxy (a client certificate of the front-proxy CA, CN
//! `front-proxy-client`, and `X-Remote-User` / `X-Remote-Group`), and others who are not it.
//! The client checks the serving certificate as the aggregator does: against the control's
//! bundle (the APIService's caBundle), for the name `smi-control.smi-system.svc`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::{Value, json};
use smi_control::ca::CaStore;
use smi_control::hub::Hub;
use smi_control::kubernetes::aggregated::{AggregatedApi, AggregatedApiConfig};
use smi_control::quota::Quotas;
use smi_control::telemetry::{
    Counts, EdgeKey, EdgeReport, MetricsState, Report, StoreLimits, SystemClock, TelemetryStore,
};
use smi_core::ServiceAccount;
use smi_core::telemetry::{Direction, LatencySketch, Workload};
use smi_test_util::kube_api::FakeApiServer;
use tokio::net::TcpStream;
use tokio::sync::watch;

const EDGES: &str = "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/deployments/web/edges";
const DISCOVERY: &str = "/apis/metrics.smi-spec.io/v1alpha1";
const REVIEWS: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
/// How long any answer or change may take.
const WAIT: Duration = Duration::from_secs(10);

/// A CA of client certificates (rcgen, P-256).
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A client certificate and its key, with `cn`.
    fn client(&self, cn: &str) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (cert.der().clone(), key)
    }
}

/// The ConfigMap kube-apiserver writes, for the front-proxy CA `ca`.
fn authentication_configmap(ca: &Ca) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"},
        "data": {
            "client-ca-file": "(the cluster's client CA: not read)",
            "requestheader-client-ca-file": ca.pem,
            "requestheader-allowed-names": "[\"front-proxy-client\"]",
            "requestheader-username-headers": "[\"X-Remote-User\"]",
            "requestheader-group-headers": "[\"X-Remote-Group\"]",
            "requestheader-extra-headers-prefix": "[\"X-Remote-Extra-\"]",
        },
    })
}

/// The fake cluster, the control's aggregated API on it, and the front proxy's CA.
struct Cluster {
    fake: FakeApiServer,
    api: AggregatedApi,
    front_proxy: Ca,
    /// The control's bundle: the APIService's caBundle.
    bundle: Vec<CertificateDer<'static>>,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

/// Deployment `web` in `shop` served 9 requests from `edge/gateway` (one failed) and called
/// `shop/db` 4 times.
fn telemetry() -> Arc<TelemetryStore> {
    let store = TelemetryStore::new(Arc::new(SystemClock), StoreLimits::from(&Quotas::default()));
    let mut sketch = LatencySketch::new();
    sketch.record(Duration::from_millis(5));
    let edge =
        |direction, (ns, workload): (&str, &str), service: &str, (success, failure)| EdgeReport {
            key: EdgeKey {
                direction,
                peer_identity: format!("spiffe://cluster.local/ns/{ns}/sa/{workload}").into(),
                peer_workload: workload.into(),
                peer_pod: format!("{workload}-0").into(),
                service: service.into(),
                backend: "".into(),
                route: "r".into(),
            },
            counts: Counts {
                success,
                failure,
                denied: 0,
            },
            latency: sketch.clone(),
        };
    let report = Report {
        instance: "i-1".into(),
        sequence: 1,
        reporter: Workload::new("shop", "web", "web-5d8f7c9b4-x2x7q"),
        edges: vec![
            edge(Direction::Inbound, ("edge", "gateway"), "shop/web", (8, 1)),
            edge(Direction::Outbound, ("shop", "db"), "shop/db", (4, 0)),
        ],
    };
    store
        .ingest(&ServiceAccount::new("shop", "web"), report)
        .expect("the report is taken");
    Arc::new(store)
}

async fn cluster() -> Cluster {
    let fake = FakeApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let front_proxy = Ca::new("front-proxy-ca");
    fake.apply(authentication_configmap(&front_proxy));
    let client = smi_control::kubernetes::client(Some(&fake.kubeconfig(dir.path())))
        .await
        .expect("a client of the fake API server");
    let authority = CaStore::new(dir.path().join("ca"))
        .open_or_init("cluster.local")
        .expect("the control's CA");
    let bundle = authority.bundle().to_vec();
    let (stop, stopping) = watch::channel(false);
    let config = AggregatedApiConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..AggregatedApiConfig::default()
    };
    let metrics = MetricsState {
        telemetry: telemetry(),
        hub: Hub::new(false),
    };
    let api = AggregatedApi::start(client, config, metrics, authority, stopping)
        .await
        .expect("the aggregated API starts");
    Cluster {
        fake,
        api,
        front_proxy,
        bundle,
        _stop: stop,
        _dir: dir,
    }
}

/// Who connects: kube-apiserver's proxy, another CA's client, or no certificate at all.
enum As {
    Proxy,
    Certificate(CertificateDer<'static>, PrivateKeyDer<'static>),
    Nobody,
}

struct Answer {
    status: StatusCode,
    body: Value,
}

impl Cluster {
    fn tls(&self, who: As) -> ClientConfig {
        let mut roots = RootCertStore::empty();
        for root in &self.bundle {
            roots.add(root.clone()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match who {
            As::Proxy => {
                let (cert, key) = self.front_proxy.client("front-proxy-client");
                builder.with_client_auth_cert(vec![cert], key).unwrap()
            }
            As::Certificate(cert, key) => builder.with_client_auth_cert(vec![cert], key).unwrap(),
            As::Nobody => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }

    /// `GET path` with `headers`, as `who`, over a new connection.
    async fn get(&self, who: As, path: &str, headers: &[(&str, &str)]) -> Answer {
        let tls = tokio_rustls::TlsConnector::from(Arc::new(self.tls(who)));
        let tcp = TcpStream::connect(self.api.local_addr()).await.unwrap();
        let name = ServerName::try_from("smi-control.smi-system.svc").unwrap();
        let stream = tls.connect(name, tcp).await.expect("the TLS handshake");
        let (mut send, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let mut request = Request::get(path).header("host", "smi-control.smi-system.svc");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Empty::<Bytes>::new()).unwrap();
        let response = tokio::time::timeout(WAIT, send.send_request(request))
            .await
            .expect("an answer in time")
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answer { status, body }
    }

    /// The SubjectAccessReviews the fake answered.
    fn reviews(&self) -> usize {
        let requests = self.fake.requests();
        requests.iter().filter(|r| r.path() == REVIEWS).count()
    }
}

const ALICE: [(&str, &str); 2] = [("X-Remote-User", "alice"), ("X-Remote-Group", "devs")];

#[tokio::test]
async fn serves_edges_to_a_user_the_cluster_allows() {
    let cluster = cluster().await;
    cluster
        .fake
        .allow("devs", "get", "metrics.smi-spec.io", "deployments");
    let answer = cluster.get(As::Proxy, EDGES, &ALICE).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["kind"], "TrafficMetricsList");
    assert_eq!(answer.body["apiVersion"], "metrics.smi-spec.io/v1alpha1");
    let items = answer.body["items"].as_array().expect("items");
    let peers: Vec<(&str, &str)> = items
        .iter()
        .map(|i| {
            let edge = &i["edge"];
            (
                edge["direction"].as_str().unwrap(),
                edge["resource"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(peers.contains(&("from", "gateway")), "{peers:?}");
    assert!(peers.contains(&("to", "db")), "{peers:?}");
    assert_eq!(cluster.reviews(), 1);
}

#[tokio::test]
async fn refuses_a_user_the_cluster_does_not_allow_in_kubernetes_words() {
    let cluster = cluster().await;
    cluster
        .fake
        .allow("carol", "get", "metrics.smi-spec.io", "deployments");
    let answer = cluster.get(As::Proxy, EDGES, &ALICE).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "deployments.metrics.smi-spec.io \"web\" is forbidden: User \"alice\" cannot get resource \"deployments/edges\" in API group \"metrics.smi-spec.io\" in the namespace \"shop\"",
            "reason": "Forbidden",
            "details": {"group": "metrics.smi-spec.io", "kind": "deployments", "name": "web"},
            "code": 403,
        })
    );
    assert_eq!(cluster.reviews(), 1);
}

/// The 401 every unauthenticated request gets, and no review asked.
fn assert_unauthorized(cluster: &Cluster, answer: &Answer) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    assert_eq!(answer.body["kind"], "Status");
    assert_eq!(answer.body["reason"], "Unauthorized");
    assert_eq!(answer.body["code"], 401);
    assert_eq!(
        cluster.reviews(),
        0,
        "no review for an unauthenticated request"
    );
}

#[tokio::test]
async fn does_not_trust_user_headers_from_another_ca() {
    let cluster = cluster().await;
    cluster.fake.allow("*", "*", "*", "*");
    let (cert, key) = Ca::new("front-proxy-ca").client("front-proxy-client");
    let answer = cluster.get(As::Certificate(cert, key), EDGES, &ALICE).await;
    assert_unauthorized(&cluster, &answer);
}

#[tokio::test]
async fn refuses_requests_without_a_client_certificate_but_answers_health_checks() {
    let cluster = cluster().await;
    cluster.fake.allow("*", "*", "*", "*");
    let answer = cluster.get(As::Nobody, EDGES, &ALICE).await;
    assert_unauthorized(&cluster, &answer);
    let unknown = cluster.get(As::Nobody, "/no/such/path", &ALICE).await;
    assert_unauthorized(&cluster, &unknown);
    for path in ["/healthz", "/livez", "/readyz"] {
        let health = cluster.get(As::Nobody, path, &[]).await;
        assert_eq!(health.status, StatusCode::OK, "{path}: {}", health.body);
    }
}

#[tokio::test]
async fn refuses_a_front_proxy_ca_certificate_with_a_cn_not_allowed() {
    let cluster = cluster().await;
    cluster.fake.allow("*", "*", "*", "*");
    let (cert, key) = cluster.front_proxy.client("someone-else");
    let answer = cluster.get(As::Certificate(cert, key), EDGES, &ALICE).await;
    assert_unauthorized(&cluster, &answer);
    let no_user = cluster
        .get(As::Proxy, EDGES, &[("X-Remote-Group", "devs")])
        .await;
    assert_unauthorized(&cluster, &no_user);
}

#[tokio::test]
async fn answers_the_aggregator_discovery() {
    let cluster = cluster().await;
    // The aggregator's availability probe and discovery requests: system:masters.
    let aggregator = [
        ("X-Remote-User", "system:kube-aggregator"),
        ("X-Remote-Group", "system:masters"),
    ];
    let resources = cluster.get(As::Proxy, DISCOVERY, &aggregator).await;
    assert_eq!(resources.status, StatusCode::OK, "{}", resources.body);
    assert_eq!(resources.body["kind"], "APIResourceList");
    assert_eq!(
        resources.body["groupVersion"],
        "metrics.smi-spec.io/v1alpha1"
    );
    let names: Vec<&str> = resources.body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"deployments"), "{names:?}");
    let group = cluster
        .get(As::Proxy, "/apis/metrics.smi-spec.io", &aggregator)
        .await;
    assert_eq!(group.status, StatusCode::OK, "{}", group.body);
    assert_eq!(group.body["kind"], "APIGroup");
    assert_eq!(
        group.body["preferredVersion"]["groupVersion"],
        "metrics.smi-spec.io/v1alpha1"
    );
    // No aggregated discovery: a 404 makes the aggregator read the APIResourceList instead.
    let apis = cluster.get(As::Proxy, "/apis", &aggregator).await;
    assert_eq!(apis.status, StatusCode::NOT_FOUND, "{}", apis.body);
    assert_eq!(cluster.reviews(), 0, "system:masters needs no review");

    // Anyone else's discovery is a non-resource review (which the fake never allows).
    let alice = cluster.get(As::Proxy, DISCOVERY, &ALICE).await;
    assert_eq!(alice.status, StatusCode::FORBIDDEN, "{}", alice.body);
    assert_eq!(
        alice.body["message"],
        "forbidden: User \"alice\" cannot get path \"/apis/metrics.smi-spec.io/v1alpha1\""
    );
    assert_eq!(cluster.reviews(), 1);
}

#[tokio::test]
async fn answers_a_repeated_request_from_the_cache() {
    let cluster = cluster().await;
    cluster
        .fake
        .allow("alice", "get", "metrics.smi-spec.io", "deployments");
    for _ in 0..3 {
        let answer = cluster.get(As::Proxy, EDGES, &ALICE).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    assert_eq!(cluster.reviews(), 1, "one review for three requests");
    let denied_path = "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/pods";
    for _ in 0..2 {
        let denied = cluster.get(As::Proxy, denied_path, &ALICE).await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.body);
    }
    assert_eq!(cluster.reviews(), 2, "a denial is kept too");
    let bob = cluster
        .get(As::Proxy, EDGES, &[("X-Remote-User", "bob")])
        .await;
    assert_eq!(bob.status, StatusCode::FORBIDDEN, "{}", bob.body);
    assert_eq!(cluster.reviews(), 3, "another user is another review");
}

#[tokio::test]
async fn answers_500_when_no_review_can_be_made_and_asks_again_later() {
    let cluster = cluster().await;
    cluster
        .fake
        .allow("alice", "get", "metrics.smi-spec.io", "deployments");
    cluster.fake.stop().await;
    let answer = cluster.get(As::Proxy, EDGES, &ALICE).await;
    assert_eq!(
        answer.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        answer.body
    );
    assert_eq!(answer.body["reason"], "InternalError");
    assert_eq!(answer.body["code"], 500);
    cluster.fake.start_again().await;
    let answer = cluster.get(As::Proxy, EDGES, &ALICE).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "the failure was not kept: {}",
        answer.body
    );
}

#[tokio::test]
async fn follows_the_front_proxy_ca_when_kube_apiserver_rotates_it() {
    let cluster = cluster().await;
    cluster
        .fake
        .allow("alice", "get", "metrics.smi-spec.io", "deployments");
    cluster
        .fake
        .wait_for_watch("/api/v1/namespaces/kube-system/configmaps")
        .await;
    let mut changes = cluster.api.front_proxy_changes();
    let first = *changes.borrow_and_update();
    let rotated = Ca::new("front-proxy-ca-2");
    cluster.fake.apply(authentication_configmap(&rotated));
    tokio::time::timeout(WAIT, changes.wait_for(|g| *g > first))
        .await
        .expect("the new ConfigMap taken in time")
        .unwrap();
    let old = cluster.get(As::Proxy, EDGES, &ALICE).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED, "{}", old.body);
    let (cert, key) = rotated.client("front-proxy-client");
    let new = cluster.get(As::Certificate(cert, key), EDGES, &ALICE).await;
    assert_eq!(new.status, StatusCode::OK, "{}", new.body);

    cluster.fake.delete(
        "v1",
        "configmaps",
        Some("kube-system"),
        "extension-apiserver-authentication",
    );
    let deleted = *changes.borrow_and_update();
    tokio::time::timeout(WAIT, changes.wait_for(|g| *g > deleted))
        .await
        .expect("the deletion taken in time")
        .unwrap();
    let (cert, key) = rotated.client("front-proxy-client");
    let closed = cluster.get(As::Certificate(cert, key), EDGES, &ALICE).await;
    assert_eq!(
        closed.status,
        StatusCode::UNAUTHORIZED,
        "fails closed: {}",
        closed.body
    );
}
