//! Admin servers (the control's, a workload's) over plain HTTP/1.1 on loopback: their text or
//! JSON, and a wait for a JSON view to reach a state.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// How often [`json_until`] asks again.
const POLL: Duration = Duration::from_millis(10);

/// `GET path` on `addr` (Host `localhost`); the status and the body as text.
pub async fn get_text(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    try_get(addr, path)
        .await
        .unwrap_or_else(|e| panic!("GET {path} on {addr}: {e}"))
}

/// [`get_text`], or `None` when nothing answers yet (a server that is still starting).
pub async fn try_get_text(addr: SocketAddr, path: &str) -> Option<(StatusCode, String)> {
    try_get(addr, path).await.ok()
}

async fn try_get(addr: SocketAddr, path: &str) -> Result<(StatusCode, String), String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP/1.1: {e}"))?;
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("a GET of {path:?}: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("the body: {e}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// `GET path` on `addr`: the body as JSON, or as a JSON string when it is not JSON (Prometheus
/// text, a plain message).
pub async fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (_, body) = get_text(addr, path).await;
    serde_json::from_str(&body).unwrap_or(Value::String(body))
}

/// Asks `GET path` on `addr` until its JSON satisfies `done`, and returns it; panics after
/// `timeout`. An admin view has no change notification to wait on, so this asks again every
/// 10 ms.
pub async fn json_until(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    tokio::time::timeout(timeout, async {
        loop {
            let value = get_json(addr, path).await;
            if done(&value) {
                return value;
            }
            tokio::time::sleep(POLL).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{path}: the expected state did not come within {timeout:?}"))
}
