//! The control's admin API as smictl reaches it (`status`, `top`): plain HTTP/1.1 on the
//! `--admin` address, with the admin token when one is given.

use std::net::SocketAddr;
use std::path::Path;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::escape::escape;

/// The environment variable the admin token is taken from when `--token-file` is not given.
pub const TOKEN_ENV: &str = "SMI_ADMIN_TOKEN";

/// The bearer token for the admin API: `token_file`'s, else `$SMI_ADMIN_TOKEN`, else none.
pub fn admin_token(token_file: Option<&Path>) -> Result<Option<String>, String> {
    let token = match token_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("--token-file {}: {e}", path.display()))?,
        None => match std::env::var(TOKEN_ENV) {
            Ok(token) => token,
            Err(_) => return Ok(None),
        },
    };
    let token = token.trim();
    if token.is_empty() {
        let from = token_file.map_or_else(
            || format!("${TOKEN_ENV}"),
            |p| format!("--token-file {}", p.display()),
        );
        return Err(format!("{from}: the admin token is empty"));
    }
    Ok(Some(token.to_owned()))
}

/// `GET path` on the admin API: the body of a success, or what went wrong (the API's own reason
/// when it gives one: the first line of a text body, or a JSON body's `error`).
pub async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Result<Bytes, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot reach the admin API at {addr}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    tokio::spawn(conn);
    let mut request = hyper::Request::get(path).header(hyper::header::HOST, addr.to_string());
    if let Some(token) = token {
        request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|_| "the admin token cannot be sent in an HTTP header".to_owned())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("{addr}{path}: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if !status.is_success() {
        // The admin API says why (a token needed, a Host refused, an unknown resource).
        let error = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned));
        let reason = error.unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&body);
            text.lines().next().unwrap_or_default().to_owned()
        });
        return Err(format!("{addr}{path}: HTTP {status}: {}", escape(&reason)));
    }
    Ok(body)
}

/// [`get`], as JSON.
pub async fn get_json(addr: SocketAddr, path: &str, token: Option<&str>) -> Result<Value, String> {
    let body = get(addr, path, token).await?;
    serde_json::from_slice(&body).map_err(|e| format!("{addr}{path}: {e}"))
}
