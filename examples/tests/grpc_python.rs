//! A Python `grpcio` client (not ours: standard gRPC and TLS) calls a meshed tonic server with a
//! certificate issued by the control service. `scripts/test` installs grpcio; `SMI_PYTHON` names the
//! interpreter that has it (default `python3`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use smi_client::Mesh;
use smi_client::control::enroll;
use smi_examples::greeter::greeter_server::GreeterServer;
use smi_examples::greeting::Greetings;
use smi_examples::local::LocalControl;
use smi_server::AuthorizeLayer;

const POLICY: &str = r#"
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: greeter-rpcs, namespace: default}
spec:
  matches:
  - {name: say-hello, pathRegex: /greeter\.v1\.Greeter/SayHello, methods: [POST]}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: python-clients, namespace: default}
spec:
  destination: {kind: ServiceAccount, name: greeter, namespace: default}
  sources:
  - {kind: ServiceAccount, name: python-client, namespace: default}
  rules:
  - {kind: HTTPRouteGroup, name: greeter-rpcs, matches: [say-hello]}
"#;

/// Calls SayHello with hand-encoded protobuf (field 1, a string), so no generated code is needed.
const CLIENT: &str = r#"
import sys, grpc
port, bundle, chain, key = sys.argv[1:5]
read = lambda p: open(p, "rb").read()
credentials = grpc.ssl_channel_credentials(read(bundle), read(key), read(chain))
channel = grpc.secure_channel(
    "127.0.0.1:" + port, credentials,
    options=[("grpc.ssl_target_name_override", "greeter.default.svc.cluster.local")])
say_hello = channel.unary_unary(
    "/greeter.v1.Greeter/SayHello",
    request_serializer=lambda b: b, response_deserializer=lambda b: b)
name = b"python"
try:
    reply = say_hello(b"\x0a" + bytes([len(name)]) + name, timeout=10)
    print(reply[2:2 + reply[1]].decode())
except grpc.RpcError as e:
    print(e.code().name, e.details())
"#;

async fn credentials_in(dir: &Path, control: &LocalControl, identity: &str) -> [String; 3] {
    let config = control.workload(identity, &[]).unwrap();
    let credentials = enroll(&config.control, &config.token).await.unwrap();
    let files = credentials
        .write_pem_files(dir, &identity.replace('/', "-"))
        .unwrap();
    [files.bundle, files.chain, files.key].map(|p| p.display().to_string())
}

fn python(port: u16, [bundle, chain, key]: &[String; 3]) -> String {
    let interpreter = std::env::var("SMI_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let output = std::process::Command::new(&interpreter)
        .args(["-c", CLIENT, &port.to_string(), bundle, chain, key])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{interpreter}: {e} (scripts/test installs grpcio in a venv and sets SMI_PYTHON)"
            )
        });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python client failed: {stderr}"
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_grpcio_client_calls_a_meshed_tonic_server() {
    let control = LocalControl::start(POLICY).await.unwrap();
    let server = Mesh::start(
        control
            .workload("default/greeter", &["default/greeter"])
            .unwrap(),
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let grpc = tonic::transport::Server::builder()
        .layer(AuthorizeLayer::new(server.clone()))
        .add_service(GreeterServer::new(Greetings))
        .serve_with_incoming(smi_server::accept(listener, &server));
    let serving = tokio::spawn(grpc);

    let dir = tempfile::tempdir().unwrap();
    let allowed = credentials_in(dir.path(), &control, "default/python-client").await;
    let other = credentials_in(dir.path(), &control, "default/stranger").await;
    let (allowed_says, other_says) = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || (python(port, &allowed), python(port, &other))),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        allowed_says,
        "Hello python (you are spiffe://cluster.local/ns/default/sa/python-client)"
    );
    assert!(other_says.starts_with("PERMISSION_DENIED"), "{other_says}");
    serving.abort();
    control.stop().await;
}
