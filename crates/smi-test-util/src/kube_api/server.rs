//! The HTTP server: plain HTTP/1.1 and HTTP/2 (hyper-util's auto builder) on 127.0.0.1; every
//! request logged, answered 503 under a prefix the test made unavailable, and 401 without the
//! bearer token (except `/version`, `/healthz`, `/livez`, `/readyz`, which the real server also
//! answers anonymously). Stopping closes the listener and every connection.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, Request, Response, header};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use super::respond::{self, Body};
use super::rest::{self, Call};
use super::status::ApiError;
use super::{LoggedRequest, Shared};

/// A serving server: its accept loop, which owns the connections.
#[derive(Debug)]
pub(super) struct Running {
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    /// Closes the listener and every connection (open watches end with them).
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Dropping the accept loop drops its JoinSet, which aborts the connections.
        self.task.abort();
    }
}

/// A listener on `addr` that may take the port of a server stopped a moment ago.
pub(super) fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

pub(super) fn spawn(listener: TcpListener, shared: Arc<Shared>) -> Running {
    let (shutdown, stopped) = oneshot::channel();
    let task = tokio::spawn(accept(listener, shared, stopped));
    Running {
        shutdown: Some(shutdown),
        task,
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, mut stopped: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => {
                if let Ok((tcp, _)) = accepted {
                    connections.spawn(connection(tcp, shared.clone()));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

async fn connection(tcp: TcpStream, shared: Arc<Shared>) {
    let service = service_fn(move |request| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(serve(&shared, request).await) }
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(tcp), service)
        .await;
}

fn public(path: &str) -> bool {
    ["/version", "/healthz", "/livez", "/readyz"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    given.and_then(|v| v.strip_prefix("Bearer ")) == Some(token)
}

async fn serve(shared: &Arc<Shared>, request: Request<Incoming>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let uri = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let path = parts.uri.path().to_owned();
    let unavailable = shared.read(|s| s.unavailable.iter().any(|p| path.starts_with(p.as_str())));
    let response = if unavailable {
        respond::error(&ApiError::unavailable())
    } else if !public(&path) && !authorized(&parts.headers, &shared.token) {
        respond::error(&ApiError::unauthorized())
    } else {
        match body.collect().await {
            Ok(body) => {
                let content_type = parts.headers.get(header::CONTENT_TYPE);
                let content_type = content_type.and_then(|v| v.to_str().ok()).unwrap_or("");
                let call = Call {
                    method: parts.method.clone(),
                    query: super::routes::query(parts.uri.query()),
                    path,
                    uri: uri.clone(),
                    content_type: content_type
                        .split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_owned(),
                    body: body.to_bytes(),
                };
                rest::answer(shared, &call)
            }
            Err(e) => respond::error(&ApiError::bad_request(format!("reading the body: {e}"))),
        }
    };
    let logged = LoggedRequest {
        method: parts.method,
        uri,
        status: response.status(),
    };
    shared.update(|s| s.requests.push(logged));
    response
}
