//! tonic over the mesh: `cargo run -p smi-examples --bin greeter`.
//!
//! A tonic Greeter server (tonic's own `Server`, fed by `smi_server::accept`, with
//! `AuthorizeLayer`), and two tonic clients
//! whose transport is `MeshClient`: `default/greeter-client` is allowed by the SMI policy,
//! `default/stranger` is not and gets `PERMISSION_DENIED`. The control service runs in this
//! process (see `smi_examples::local`).

use smi_client::{Mesh, MeshClient};
use smi_examples::greeter::HelloRequest;
use smi_examples::greeter::greeter_client::GreeterClient;
use smi_examples::greeter::greeter_server::GreeterServer;
use smi_examples::greeting::Greetings;
use smi_examples::local::{Error, LocalControl};
use smi_server::AuthorizeLayer;

const POLICY: &str = r#"
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: greeter-rpcs, namespace: default}
spec:
  matches:
  - name: say-hello
    pathRegex: /greeter\.v1\.Greeter/SayHello
    methods: [POST]
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: greeter-clients, namespace: default}
spec:
  destination: {kind: ServiceAccount, name: greeter, namespace: default}
  sources:
  - {kind: ServiceAccount, name: greeter-client, namespace: default}
  rules:
  - {kind: HTTPRouteGroup, name: greeter-rpcs, matches: [say-hello]}
"#;

async fn client(mesh: Mesh) -> Result<GreeterClient<MeshClient<tonic::body::Body>>, Error> {
    // tonic sends paths only: the origin names the mesh service.
    Ok(GreeterClient::with_origin(
        MeshClient::new(mesh),
        "http://greeter.default".parse()?,
    ))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let control = LocalControl::start(POLICY).await?;

    let server = Mesh::start(control.workload("default/greeter", &["default/greeter"])?).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let _registration = server.register("default/greeter", listener.local_addr()?);
    // tonic's own server, fed meshed connections: the Peer arrives as connection info.
    let incoming = smi_server::accept(listener, &server);
    let grpc = tonic::transport::Server::builder()
        .layer(AuthorizeLayer::new(server.clone()))
        .add_service(GreeterServer::new(Greetings))
        .serve_with_incoming(incoming);
    tokio::spawn(grpc);

    let friend = Mesh::start(
        control
            .workload("default/greeter-client", &[])?
            .calls(["default/greeter"]),
    )
    .await?;
    let stranger = Mesh::start(
        control
            .workload("default/stranger", &[])?
            .calls(["default/greeter"]),
    )
    .await?;
    for mesh in [&friend, &stranger] {
        wait_for_endpoints(mesh).await?;
    }

    let reply = client(friend)
        .await?
        .say_hello(HelloRequest {
            name: "friend".into(),
        })
        .await?;
    println!("greeter-client: {}", reply.into_inner().message);
    match client(stranger)
        .await?
        .say_hello(HelloRequest {
            name: "stranger".into(),
        })
        .await
    {
        Ok(reply) => {
            return Err(format!("the stranger was answered: {:?}", reply.into_inner()).into());
        }
        Err(status) => println!("stranger: {:?}: {}", status.code(), status.message()),
    }
    control.stop().await;
    Ok(())
}

/// The server registers in the background; wait until the client knows its endpoint.
async fn wait_for_endpoints(mesh: &Mesh) -> Result<(), Error> {
    let mut changes = mesh.changed();
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while mesh.policy().endpoints("default", "greeter").is_empty() {
            if changes.changed().await.is_err() {
                break;
            }
        }
    })
    .await
    .map_err(|_| "the greeter did not register within 10 s".into())
}
