//! A mesh on a Kubernetes cluster, for end-to-end tests: the fake API server
//! ([`kube_api::FakeApiServer`], real HTTP on loopback, labelled as a fake) with the SMI CRDs of
//! `deploy/kubernetes/crds` and the bookstore's namespaces, ServiceAccounts and Services; the
//! control as a process (`smi-test-control` run as `smi-control serve --kubernetes` runs, its
//! state in the Secret `smi-system/smi-control-state`);
//! and workloads as pods: a Pod object, its projected ServiceAccount token (audience
//! `smi-mesh`, known to the fake's TokenReview) in a file, a [`Mesh`] enrolled with it, and,
//! for a server, the EndpointSlice the endpoint controller would write (the fake has none).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use smi_client::control::ControlAddr;
use smi_client::{Mesh, MeshConfig};

use crate::Process;
use crate::control::START;
use crate::kube_api::{FakeApiServer, TokenIdentity};

/// The CRDs, as deployed.
const CRDS: [&str; 3] = [
    include_str!("../../../deploy/kubernetes/crds/access.smi-spec.io.yaml"),
    include_str!("../../../deploy/kubernetes/crds/specs.smi-spec.io.yaml"),
    include_str!("../../../deploy/kubernetes/crds/split.smi-spec.io.yaml"),
];
/// The bookstore's policy as cluster objects (OSM's versions: split v1alpha2, access v1alpha3).
pub const BOOKSTORE_POLICY: &str =
    include_str!("../../../deploy/kubernetes/examples/bookstore-policy.yaml");

#[derive(Debug)]
pub struct KubeCluster {
    pub api: FakeApiServer,
    pub control: Process,
    /// The control's trust bundle (what a ConfigMap would carry to pods), PEM.
    pub bundle_pem: String,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    ttl: Duration,
}

/// A pod's names and identity.
#[derive(Clone, Debug)]
pub struct PodSpec<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub account: &'a str,
    pub labels: &'a [(&'a str, &'a str)],
}

impl KubeCluster {
    /// The fake API server with the CRDs, `objects` (YAML, several documents) applied, and
    /// the bookstore's namespaces, accounts and Services; then the control, issuing
    /// certificates that live `ttl`.
    pub async fn start(objects: &str, ttl: Duration) -> KubeCluster {
        let api = FakeApiServer::start().await;
        for text in CRDS {
            apply_yaml(&api, text);
        }
        api.apply(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "smi-system"}}),
        );
        for namespace in ["bookstore", "bookbuyer", "bookthief"] {
            api.apply(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
            );
            api.apply(json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": namespace, "namespace": namespace}}));
        }
        for (name, selector) in [
            ("bookstore", json!({"app": "bookstore"})),
            ("bookstore-v1", json!({"app": "bookstore", "version": "v1"})),
            ("bookstore-v2", json!({"app": "bookstore", "version": "v2"})),
        ] {
            api.apply(json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": "bookstore"},
                "spec": {"selector": selector, "ports": [{"port": 80}]}}));
        }
        apply_yaml(&api, objects);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let kubeconfig = api.kubeconfig(dir.path());
        let control = spawn_control(dir.path(), &kubeconfig, "127.0.0.1:0", ttl).await;
        let bundle_pem = bundle_in_secret(&api);
        KubeCluster {
            api,
            control,
            bundle_pem,
            dir,
            kubeconfig,
            ttl,
        }
    }

    /// The control's API address.
    pub fn addr(&self) -> ControlAddr {
        ControlAddr::parse(&self.control.addrs[0].to_string()).expect("the control's address")
    }

    /// Kills the control (SIGKILL) and starts it again on the same port and state.
    pub async fn restart_control(&mut self) {
        self.control.kill().await;
        let listen = self.control.addrs[0].to_string();
        self.control = spawn_control(self.dir.path(), &self.kubeconfig, &listen, self.ttl).await;
    }

    /// A pod of `spec` (its Pod object made, a token bound to it in a file) enrolled as a
    /// [`Mesh`] calling `calls`.
    pub async fn pod(&self, spec: &PodSpec<'_>, calls: &[&str]) -> Mesh {
        let labels: serde_json::Map<String, Value> = spec
            .labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        let pod = self.api.apply(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": labels},
            "spec": {"serviceAccountName": spec.account, "containers": [{"name": "app", "image": "app"}]}}));
        let uid = pod["metadata"]["uid"]
            .as_str()
            .expect("a pod uid")
            .to_owned();
        let token = format!(
            "{}.{}.{}",
            base64url(b"{\"alg\":\"RS256\"}"),
            base64url(spec.name.as_bytes()),
            base64url(uid.as_bytes())
        );
        self.api.add_token(
            &token,
            TokenIdentity::service_account(spec.namespace, spec.account, &["smi-mesh"])
                .bound_to_pod(spec.name, &uid),
        );
        let file = self
            .dir
            .path()
            .join(format!("token-{}-{}", spec.namespace, spec.name));
        std::fs::write(&file, &token).expect("writing the token file");
        let config = MeshConfig::new(self.addr(), token)
            .token_file(&file)
            .ca_bundle(self.bundle_pem.clone())
            .calls(calls.iter().copied())
            .names(spec.name, spec.name);
        tokio::time::timeout(START, Mesh::start(config))
            .await
            .unwrap_or_else(|_| panic!("pod {} did not start within {START:?}", spec.name))
            .unwrap_or_else(|e| panic!("pod {} did not start: {e}", spec.name))
    }

    /// The EndpointSlice of `service` (namespace `namespace`) listing `pod` at `addr`, ready.
    pub fn endpoint_slice(&self, namespace: &str, service: &str, pod: &str, addr: SocketAddr) {
        self.api.apply(
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{service}-{pod}"), "namespace": namespace,
                "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [addr.ip().to_string()], "conditions": {"ready": true},
                "targetRef": {"kind": "Pod", "name": pod, "namespace": namespace}}],
            "ports": [{"port": addr.port(), "protocol": "TCP"}]}),
        );
    }

    /// Applies YAML documents (as `kubectl apply -f` would).
    pub fn apply(&self, yaml: &str) {
        apply_yaml(&self.api, yaml);
    }

    /// A kubeconfig for the fake API server (what `smictl --kubernetes --kubeconfig` takes).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }
}

/// The trust bundle the control keeps in its Secret (`ca.crt`, cert-manager's layout): what a
/// ConfigMap would carry to pods.
fn bundle_in_secret(api: &FakeApiServer) -> String {
    use base64::Engine;
    let secret = api
        .get("v1", "Secret", Some("smi-system"), "smi-control-state")
        .expect("the control's state Secret");
    let encoded = secret["data"]["ca.crt"]
        .as_str()
        .expect("ca.crt in the Secret");
    let pem = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64 data");
    String::from_utf8(pem).expect("PEM text")
}

async fn spawn_control(dir: &Path, kubeconfig: &Path, listen: &str, ttl: Duration) -> Process {
    let policy = dir.join("policy");
    std::fs::create_dir_all(&policy).expect("a policy directory");
    let mut command = tokio::process::Command::new(crate::process::binary("smi-test-control"));
    command
        .arg(&policy)
        .arg(dir.join("state"))
        .arg(listen)
        .arg(ttl.as_millis().to_string())
        .env("SMI_TEST_KUBECONFIG", kubeconfig);
    Process::spawn(command).await
}

/// Every document of `yaml`, applied.
pub fn apply_yaml(api: &FakeApiServer, yaml: &str) {
    for text in yaml.split("\n---") {
        let value: Value = serde_yaml_ng::from_str(text).expect("a YAML document");
        if !value.is_null() {
            api.apply(value);
        }
    }
}

/// Unpadded base64url (RFC 4648 section 5): a token of a JWT's shape.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}
