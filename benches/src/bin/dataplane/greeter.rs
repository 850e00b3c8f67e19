//! The gRPC service every variant serves: `greeter.v1.Greeter/SayHello`, answering with the
//! caller's SPIFFE ID where the mesh captured one (variant C), as an application would read it.

use smi_server::Peer;
use tonic::{Request, Response, Status};

pub use proto::greeter_client::GreeterClient;
pub use proto::greeter_server::GreeterServer;
use proto::{HelloReply, HelloRequest};

/// The generated protobuf types and tonic stubs.
#[allow(
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
pub mod proto {
    tonic::include_proto!("greeter.v1");
}

/// What a load generator sends.
pub fn request() -> HelloRequest {
    HelloRequest {
        name: "bench".into(),
    }
}

#[derive(Debug, Default)]
pub struct Greetings;

#[tonic::async_trait]
impl proto::greeter_server::Greeter for Greetings {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let caller = request
            .extensions()
            .get::<Peer>()
            .map(|p| p.identity.to_string());
        let name = request.into_inner().name;
        Ok(Response::new(HelloReply {
            message: format!("Hello {name} ({})", caller.as_deref().unwrap_or("nobody")),
        }))
    }
}
