//! One request of a variant: an HTTP GET of 1 KiB, or a gRPC unary call, over the variant's
//! connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::Error;
use crate::greeter::{self, GreeterClient};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use smi_client::MeshClient;

/// What one variant sends; cheap to clone (clones share the connection).
#[derive(Clone)]
pub enum Call {
    Get { client: Http, uri: Arc<str> },
    Grpc(Grpc),
}

#[derive(Clone)]
pub enum Http {
    Plain(http2::SendRequest<Empty<Bytes>>),
    Mesh(MeshClient<Full<Bytes>>),
}

#[derive(Clone)]
pub enum Grpc {
    Plain(GreeterClient<H2Channel>),
    Mesh(GreeterClient<MeshClient<tonic::body::Body>>),
}

impl Call {
    pub async fn once(&self) -> Result<(), Error> {
        match self {
            Call::Get { client, uri } => {
                let status = match client {
                    Http::Plain(sender) => {
                        let response = sender
                            .clone()
                            .send_request(Request::get(&**uri).body(Empty::new())?)
                            .await?;
                        let status = response.status();
                        response.into_body().collect().await?;
                        status
                    }
                    Http::Mesh(client) => {
                        let response = client
                            .send(Request::get(&**uri).body(Full::new(Bytes::new()))?)
                            .await?;
                        let status = response.status();
                        response.into_body().collect().await?;
                        status
                    }
                };
                if !status.is_success() {
                    return Err(format!("{uri}: HTTP {status}").into());
                }
            }
            Call::Grpc(grpc) => {
                let request = greeter::request();
                match grpc {
                    Grpc::Plain(client) => client.clone().say_hello(request).await?,
                    Grpc::Mesh(client) => client.clone().say_hello(request).await?,
                };
            }
        }
        Ok(())
    }
}

/// An HTTP/2 client connection over `io` (plain TCP or TLS).
pub async fn h2<B, T>(io: T) -> Result<http2::SendRequest<B>, Error>
where
    B: hyper::body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(TokioIo::new(io))
        .await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One HTTP/2 connection as a tonic transport, with no layers: the A and B gRPC clients.
#[derive(Clone)]
pub struct H2Channel(pub http2::SendRequest<tonic::body::Body>);

impl tower_service::Service<Request<tonic::body::Body>> for H2Channel {
    type Response = Response<Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Incoming>, hyper::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.0.send_request(request))
    }
}
