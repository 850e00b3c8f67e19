use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use smi_core::ServiceRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::*;
use crate::files::StateDir;
use crate::hub::{Endpoint, EndpointSink};
use crate::traits::{Changed, Content, EndpointSource, PolicyDocument, PolicySource, SourceError};

/// A policy source holding fixed documents (as a Kubernetes source holds its objects).
struct Fixed(Vec<PolicyDocument>);

impl PolicySource for Fixed {
    fn name(&self) -> &str {
        "fixed"
    }

    fn documents(&self) -> Result<Vec<PolicyDocument>, SourceError> {
        Ok(self.0.clone())
    }

    fn watch(&self, _changed: Changed) -> Result<WatchGuard, SourceError> {
        Ok(WatchGuard::new(()))
    }
}

/// An endpoint source that knows one endpoint from the start (and keeps its sink, as a source
/// that goes on watching would).
struct OneEndpoint {
    _sink: EndpointSink,
}

impl OneEndpoint {
    fn new(sink: EndpointSink) -> Self {
        sink.set([(
            ServiceRef::new("shop", "web"),
            vec![Endpoint {
                address: "10.1.2.3:8080".parse().unwrap(),
                identity: "spiffe://cluster.local/ns/shop/sa/web".parse().unwrap(),
            }],
        )]);
        sink.synced();
        Self { _sink: sink }
    }
}

impl EndpointSource for OneEndpoint {
    fn run(self: Arc<Self>, mut stopping: watch::Receiver<bool>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        })
    }
}

/// `GET path` on the admin server, as JSON.
async fn admin_json(addr: SocketAddr, path: &str) -> Value {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(body).unwrap()
}

#[tokio::test]
async fn a_control_is_assembled_from_other_parts_beside_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let split = json!({
        "apiVersion": "split.smi-spec.io/v1alpha4",
        "kind": "TrafficSplit",
        "metadata": {"name": "canary", "namespace": "shop"},
        "spec": {"service": "web", "backends": [{"service": "web-v1", "weight": 1}]},
    });
    let config = ServeConfig {
        // Not used: the parts below replace the directories' defaults.
        policy_dir: dir.path().join("no-such-policy"),
        listen: "127.0.0.1:0".parse().unwrap(),
        admin: "127.0.0.1:0".parse().unwrap(),
        ..ServeConfig::default()
    };
    let running = ControlBuilder::new(config)
        .policy_source(Fixed(vec![PolicyDocument {
            origin: "kubernetes:TrafficSplit/shop/canary".into(),
            content: Content::Value(split),
        }]))
        .state_store(StateDir::new(dir.path().join("state")))
        .endpoint_source("kubernetes", OneEndpoint::new)
        .start()
        .await
        .unwrap();
    let policy = admin_json(running.admin_addr, "/debug/policy").await;
    assert_eq!(
        policy["resources"]["traffic_splits"],
        json!(["shop/canary"])
    );
    assert_eq!(
        policy["endpoints"],
        json!([{
            "service": "shop/web",
            "endpoints": [{
                "address": "10.1.2.3",
                "port": 8080,
                "identity": "spiffe://cluster.local/ns/shop/sa/web",
            }],
        }])
    );
    // The state store given is the one used: its CA signs the API's certificate.
    assert!(dir.path().join("state/ca.json").is_file());
    running.shutdown().await;
}

#[tokio::test]
async fn without_parts_the_policy_directory_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServeConfig {
        policy_dir: dir.path().join("missing"),
        state_dir: dir.path().join("state"),
        listen: "127.0.0.1:0".parse().unwrap(),
        admin: "127.0.0.1:0".parse().unwrap(),
        ..ServeConfig::default()
    };
    let refused = start(config).await.unwrap_err();
    assert!(matches!(refused, ServeError::PolicyDir(_)), "{refused}");
}
