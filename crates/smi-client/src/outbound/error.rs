use std::net::SocketAddr;

/// Why an outbound request failed. Every variant before [`OutboundError::Http`] means the
/// request was never sent to any server.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("the request has no authority (set the URI's host, e.g. http://svc.ns/path)")]
    NoAuthority,
    #[error("{0}")]
    NotAService(String),
    #[error(
        "unknown service {0}: the control service sent nothing for it (is it in this workload's calls?)"
    )]
    UnknownService(String),
    #[error("service {0} has no endpoints")]
    NoEndpoints(String),
    #[error(
        "every endpoint of service {0} serves as a revoked identity (the control's deny list); nothing was sent"
    )]
    Revoked(String),
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS with {addr}: {message}")]
    Tls { addr: SocketAddr, message: String },
    #[error("{addr} presented {presented}, but the endpoint is bound to {expected}")]
    IdentityMismatch {
        addr: SocketAddr,
        expected: String,
        presented: String,
    },
    #[error("HTTP with {addr}: {source}")]
    Http {
        addr: SocketAddr,
        source: hyper::Error,
    },
}

impl OutboundError {
    /// Whether another endpoint may be tried: nothing of the request reached a server.
    pub(crate) fn before_request(&self) -> bool {
        matches!(
            self,
            OutboundError::Connect { .. }
                | OutboundError::Tls { .. }
                | OutboundError::IdentityMismatch { .. }
        )
    }
}
