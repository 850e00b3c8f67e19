//! What the telemetry tests share: a real control service (a TrafficSplit, an admin token),
//! join tokens, gRPC channels over TLS, Certify calls and the admin API.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::Value;
use smi_control::ca::CaStore;
use smi_control::enroll::JoinTokens;
use smi_control::serve::{Running, ServeConfig, start};
use smi_core::proto::v1::{self, control_client::ControlClient};
use smi_core::{ServiceAccount, ServiceRef};
use smi_tls::{Mtls, OwnCertificate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Channel, Endpoint, Uri};

use super::write;

const TRUST_DOMAIN: &str = "cluster.local";
const TOKEN: &str = "t0p-s3cret";
const SPLIT: &str = "apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: db-split, namespace: shop}
spec:
  service: db
  backends:
  - {service: db-v1, weight: 90}
  - {service: db-v2, weight: 10}
";
pub const WEB_POD: &str = "web-5d8f7c9b4-x2x7q";

pub struct Control {
    pub running: Running,
    state: PathBuf,
    pub token_file: PathBuf,
    _dir: tempfile::TempDir,
}

pub async fn control() -> Control {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy");
    std::fs::create_dir(&policy).unwrap();
    write(&policy, "split.yaml", SPLIT);
    let token_file = write(dir.path(), "admin.token", TOKEN);
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let state = dir.path().join("state");
    let running = start(ServeConfig {
        policy_dir: policy,
        state_dir: state.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        admin: "127.0.0.1:0".parse().unwrap(),
        admin_token_file: Some(token_file.clone()),
        ..ServeConfig::default()
    })
    .await
    .unwrap();
    Control {
        running,
        state,
        token_file,
        _dir: dir,
    }
}

impl Control {
    fn bundle(&self) -> Vec<CertificateDer<'static>> {
        CaStore::new(&self.state)
            .open_or_init(TRUST_DOMAIN)
            .unwrap()
            .bundle()
            .to_vec()
    }

    /// A join token for `identity` (`ns/name`), signed with the running control's key.
    pub fn token(&self, identity: &str) -> String {
        let key = CaStore::new(&self.state).token_key().unwrap();
        let identity: ServiceAccount = identity.parse().unwrap();
        let serves: Vec<ServiceRef> = Vec::new();
        JoinTokens::new(&key, TRUST_DOMAIN).create(
            &identity,
            &serves,
            Duration::from_secs(600),
            &self.bundle(),
        )
    }

    /// A gRPC channel over TLS presenting `own` (none: first contact).
    pub async fn channel(&self, own: Option<OwnCertificate>) -> ControlClient<Channel> {
        let bundle = self.bundle();
        let tls = Mtls::new(bundle.iter().map(|c| c.as_ref()))
            .unwrap()
            .control_client(own, TRUST_DOMAIN)
            .unwrap();
        let tls = Arc::new(tls);
        let addr = self.running.api_addr;
        let connector = tower::service_fn(move |_: Uri| {
            let tls = tls.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let name = ServerName::try_from("localhost").unwrap();
                let stream = tokio_rustls::TlsConnector::from(tls)
                    .connect(name, tcp)
                    .await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        });
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_with_connector(connector)
            .await
            .unwrap();
        ControlClient::new(channel)
    }

    /// Certify with `token` (or, empty, the certificate `own` renews), asking for `names`.
    pub async fn certify(
        &self,
        own: Option<OwnCertificate>,
        token: &str,
        names: Option<(&str, &str)>,
    ) -> Result<OwnCertificate, tonic::Status> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let csr = CertificateParams::default()
            .serialize_request(&key)
            .unwrap();
        let response = self
            .channel(own)
            .await
            .certify(v1::CertifyRequest {
                csr_der: csr.der().to_vec(),
                token: token.to_owned(),
                names: names.map(|(workload, pod)| v1::WorkloadNames {
                    workload: workload.into(),
                    pod: pod.into(),
                }),
            })
            .await?
            .into_inner();
        Ok(OwnCertificate {
            chain: response
                .certificate_chain_der
                .into_iter()
                .map(CertificateDer::from)
                .collect(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// `GET path` on the admin API with its token: status and JSON body.
    pub async fn admin(&self, path: &str) -> (u16, Value) {
        let mut stream = tokio::net::TcpStream::connect(self.running.admin_addr)
            .await
            .unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }
}
