//! An optional admin endpoint for a workload (plain HTTP; bind it to loopback): `GET /metrics`
//! (Prometheus text of the mesh layers' request metrics, in our schema and Istio's) and
//! `GET /status` (ready, policy version, certificate expiry, connected to the control service,
//! traffic reports sent and failed).

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
use smi_client::Handles;
use tokio::net::TcpListener;

/// Serves the admin endpoint until the listener fails, on a mesh's handles (pass `mesh.clone()`
/// or `&mesh`).
pub async fn serve_admin(listener: TcpListener, handles: impl Into<Handles>) -> io::Result<()> {
    let handles = handles.into();
    loop {
        let (tcp, _) = listener.accept().await?;
        let handles = handles.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = answer(&handles, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

fn answer(handles: &Handles, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match request.uri().path() {
        "/metrics" => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            handles.metrics.prometheus(),
        ),
        "/status" => {
            let s = handles.status.get();
            let expires = s
                .certificate_expires
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            (
                StatusCode::OK,
                "text/plain; charset=utf-8",
                format!(
                    "identity: {}\nready: {}\npolicy_version: {}\ncertificate_expires_unix: {expires}\nconnected: {}\nreports_sent: {}\nreports_failed: {}\n",
                    handles.policy.identity(),
                    s.ready,
                    s.policy_version,
                    s.connected,
                    s.reports_sent,
                    s.reports_failed
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
