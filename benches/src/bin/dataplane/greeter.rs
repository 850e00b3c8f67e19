//! The gRPC service every variant serves: `greeter.v1.Greeter/SayHello`, answering with the
//! caller's SPIFFE ID where the mesh captured one (variant C), as an application would read it;
//! and `SayHellos`, the same answer [`HELLOS_PER_CALL`] times as a server stream (the
//! `streaming` scenario).

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

/// Replies per `SayHellos` call.
pub const HELLOS_PER_CALL: usize = 100;

/// `SayHellos`' stream: one reply, repeated.
type Hellos = tokio_stream::Iter<
    std::iter::Map<std::iter::RepeatN<HelloReply>, fn(HelloReply) -> Result<HelloReply, Status>>,
>;

/// What a load generator sends.
pub fn request() -> HelloRequest {
    HelloRequest {
        name: "bench".into(),
    }
}

#[derive(Debug, Default)]
pub struct Greetings;

impl Greetings {
    /// "Hello <name> (<caller's SPIFFE ID, or nobody>)".
    fn greeting(request: Request<HelloRequest>) -> HelloReply {
        let caller = request
            .extensions()
            .get::<Peer>()
            .map(|p| p.identity.to_string());
        let name = request.into_inner().name;
        HelloReply {
            message: format!("Hello {name} ({})", caller.as_deref().unwrap_or("nobody")),
        }
    }
}

#[tonic::async_trait]
impl proto::greeter_server::Greeter for Greetings {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        Ok(Response::new(Self::greeting(request)))
    }

    type SayHellosStream = Hellos;

    async fn say_hellos(&self, request: Request<HelloRequest>) -> Result<Response<Hellos>, Status> {
        let replies = std::iter::repeat_n(Self::greeting(request), HELLOS_PER_CALL)
            .map(Ok as fn(HelloReply) -> Result<HelloReply, Status>);
        Ok(Response::new(tokio_stream::iter(replies)))
    }
}
