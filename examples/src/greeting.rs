//! The greeter example's service: says hello, and who (which SPIFFE ID) called.

use smi_server::Peer;
use tonic::{Request, Response, Status};

use crate::greeter::greeter_server::Greeter;
use crate::greeter::{HelloReply, HelloRequest};

#[derive(Debug, Default)]
pub struct Greetings;

#[tonic::async_trait]
impl Greeter for Greetings {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        // The caller's verified SPIFFE ID, captured at the TLS handshake.
        let caller = request
            .extensions()
            .get::<Peer>()
            .map_or_else(|| "nobody".to_owned(), |p| p.identity.to_string());
        Ok(Response::new(HelloReply {
            message: format!("Hello {} (you are {caller})", request.into_inner().name),
        }))
    }
}
