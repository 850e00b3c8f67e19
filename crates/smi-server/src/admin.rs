//! An optional admin endpoint for a workload (plain HTTP; bind it to loopback): `GET /metrics`
//! (Prometheus text of the mesh layers' request metrics) and `GET /status` (ready, policy
//! version, certificate expiry, connected to the control service).

use std::convert::Infallible;
use std::io;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use smi_client::Mesh;
use tokio::net::TcpListener;

/// Serves the admin endpoint until the listener fails.
pub async fn serve_admin(listener: TcpListener, mesh: Mesh) -> io::Result<()> {
    loop {
        let (tcp, _) = listener.accept().await?;
        let mesh = mesh.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = answer(&mesh, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

fn answer(mesh: &Mesh, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match request.uri().path() {
        "/metrics" => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            mesh.metrics().prometheus(),
        ),
        "/status" => {
            let s = mesh.status();
            let expires = s
                .certificate_expires
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            (
                StatusCode::OK,
                "text/plain; charset=utf-8",
                format!(
                    "identity: {}\nready: {}\npolicy_version: {}\ncertificate_expires_unix: {expires}\nconnected: {}\n",
                    mesh.identity(),
                    s.ready,
                    s.policy_version,
                    s.connected
                ),
            )
        }
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "try /metrics or /status\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}
