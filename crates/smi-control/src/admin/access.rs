//! Who may use the admin API: `Host` checking (against DNS rebinding) and the optional bearer
//! token that guards everything except `/healthz`, `/readyz` and `/metrics`.
//!
//! DNS rebinding: a web page on `evil.example` re-points its name at 127.0.0.1 and then reads
//! `http://evil.example:7080/debug/policy` with the browser's same-origin blessing. The request
//! still says `Host: evil.example`, so refusing Hosts that are not ours stops it.

use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Paths served without the token: probes and the Prometheus scrape. Everything else (the
/// `/debug/*` views, the TrafficMetrics API under `/apis/*`, and any path added later) needs it
/// when one is configured: fail closed.
const OPEN_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Who may use the admin API. Built once at start.
#[derive(Clone, Debug)]
pub struct Access {
    hosts: Arc<AllowedHosts>,
    token: Option<AdminToken>,
}

impl Access {
    pub fn new(hosts: AllowedHosts, token: Option<AdminToken>) -> Self {
        Self {
            hosts: Arc::new(hosts),
            token,
        }
    }
}

/// The names a request may give in `Host` (or the HTTP/2 `:authority`): `localhost`, loopback
/// IPs, the IP the admin API is bound to, and the operator's `--admin-host` names.
#[derive(Clone, Debug, Default)]
pub struct AllowedHosts {
    names: Vec<String>,
    ips: Vec<IpAddr>,
}

impl AllowedHosts {
    /// `bound` is the listener's IP (not added when unspecified: 0.0.0.0 is no one's name);
    /// `extra` names or IPs from `--admin-host`.
    pub fn new(bound: IpAddr, extra: &[String]) -> Self {
        let mut hosts = Self::default();
        if !bound.is_unspecified() {
            hosts.ips.push(bound.to_canonical());
        }
        for name in extra {
            match parse_ip(name) {
                Some(ip) => hosts.ips.push(ip),
                None => hosts.names.push(normalize(name)),
            }
        }
        hosts
    }

    /// Whether `host` (the host part of an authority, without the port) names this API.
    pub fn allows(&self, host: &str) -> bool {
        match parse_ip(host) {
            Some(ip) => ip.is_loopback() || self.ips.contains(&ip),
            None => {
                let name = normalize(host);
                name == "localhost" || self.names.contains(&name)
            }
        }
    }
}

/// `[::1]` or `127.0.0.1` as an IP (IPv4-mapped IPv6 as IPv4); `None` for a name.
fn parse_ip(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// DNS names compare case-insensitively, and `localhost.` is `localhost`.
fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// The bearer token `--admin-token-file` holds. Its `Debug` does not show it.
#[derive(Clone)]
pub struct AdminToken(Arc<[u8]>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

/// Why `--admin-token-file` cannot be used; the control refuses to start.
#[derive(Debug, thiserror::Error)]
#[error("admin token file {path}: {message}")]
pub struct TokenFileError {
    pub path: PathBuf,
    pub message: String,
}

impl AdminToken {
    /// A token from its text; leading and trailing whitespace (a final newline) is not part of it.
    /// `None` when empty or when it has characters an `Authorization` header cannot carry.
    pub fn new(text: &str) -> Option<Self> {
        let token = text.trim();
        let sendable = token.bytes().all(|b| b.is_ascii_graphic());
        (!token.is_empty() && sendable).then(|| Self(token.as_bytes().into()))
    }

    /// Reads the token at start. Refused: an unreadable or empty file, and one whose mode lets
    /// the group or others read it (it is a secret: 0600 or stricter). A symbolic link is
    /// followed (Kubernetes mounts secrets that way); the mode checked is the file's.
    pub fn from_file(path: &Path) -> Result<Self, TokenFileError> {
        let error = |message: String| TokenFileError {
            path: path.to_owned(),
            message,
        };
        let file = std::fs::File::open(path).map_err(|e| error(e.to_string()))?;
        let meta = file.metadata().map_err(|e| error(e.to_string()))?;
        if !meta.is_file() {
            return Err(error("not a regular file".into()));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(error(format!(
                "mode {mode:04o} lets the group or others read the token; run `chmod 600 {}`",
                path.display()
            )));
        }
        let text = std::io::read_to_string(file).map_err(|e| error(e.to_string()))?;
        Self::new(&text).ok_or_else(|| {
            error(
                "empty, or has characters other than visible ASCII (one token on one line)".into(),
            )
        })
    }

    /// Constant time in the token's content (a mismatch in length returns at once: the length
    /// is not the secret).
    pub fn verify(&self, presented: &[u8]) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.0, presented).is_ok()
    }
}

// === impl the middleware ===

/// The admin router's guard: `Host` first (400 without one, 421 for a name that is not ours),
/// then the token for paths outside [`OPEN_PATHS`] (401).
pub async fn guard(State(access): State<Access>, request: Request, next: Next) -> Response {
    if let Err(refused) = check_host(&access.hosts, &request) {
        return refused.into_response();
    }
    if let Some(token) = &access.token
        && !OPEN_PATHS.contains(&request.uri().path())
        && let Err(refused) = check_token(token, request.headers())
    {
        return refused.into_response();
    }
    next.run(request).await
}

/// A refused request: its status, and a body that says what to do.
#[derive(Debug)]
struct Refused {
    status: StatusCode,
    message: String,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.message).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"smi-control admin\""),
            );
        }
        response
    }
}

fn check_host(hosts: &AllowedHosts, request: &Request) -> Result<(), Refused> {
    // HTTP/1.1 gives `Host`; HTTP/2 gives `:authority` (in the URI), maybe `Host` too; an
    // absolute-form HTTP/1.1 target gives both. Every one given must be ours.
    let header = match request.headers().get(header::HOST) {
        Some(value) => Some(value.to_str().map_err(|_| bad_host("is not text"))?),
        None => None,
    };
    let authority = request.uri().authority().map(|a| a.as_str());
    if header.is_none() && authority.is_none() {
        return Err(bad_host("is missing"));
    }
    for given in header.into_iter().chain(authority) {
        let parsed: http::uri::Authority = given
            .parse()
            .map_err(|_| bad_host("is not a host[:port]"))?;
        if !hosts.allows(parsed.host()) {
            tracing::info!(
                host = given,
                "admin request refused: Host is not a name of this admin API"
            );
            return Err(Refused {
                status: StatusCode::MISDIRECTED_REQUEST,
                message: format!(
                    "421 misdirected request: Host {given:?} is not a name of this admin API; use \
                     localhost, a loopback address or the address it listens on, or start the \
                     control with --admin-host NAME\n"
                ),
            });
        }
    }
    Ok(())
}

fn bad_host(what: &str) -> Refused {
    Refused {
        status: StatusCode::BAD_REQUEST,
        message: format!("400 bad request: the Host header {what}\n"),
    }
}

fn check_token(token: &AdminToken, headers: &HeaderMap) -> Result<(), Refused> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let why = match presented {
        Some(given) if token.verify(given.as_bytes()) => return Ok(()),
        Some(_) => "the bearer token is wrong",
        None => {
            "this path needs `Authorization: Bearer <token>` (the token in the control's \
             --admin-token-file; `smictl status --token-file`)"
        }
    };
    tracing::info!(reason = why, "admin request refused: unauthorized");
    Err(Refused {
        status: StatusCode::UNAUTHORIZED,
        message: format!("401 unauthorized: {why}\n"),
    })
}
