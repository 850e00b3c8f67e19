//! `ServeOptions`: the timeouts and connection limits of a meshed server, with defaults that
//! hold a hostile or broken client (even one with a valid mesh certificate) to a bounded share
//! of the process.
//!
//! Where each one is enforced:
//! - [`crate::accept_with`] (so [`crate::serve_with`], tonic's `serve_with_incoming`,
//!   [`crate::MeshListener::with_options`] and [`crate::serve_tcp_with`] alike): the TLS
//!   handshake timeout and the connection limits.
//! - [`crate::serve_with`] only: the header read and idle timeouts, HTTP/2 keepalive, upgrades.

use std::time::Duration;

/// How a meshed server bounds its connections. `Default` is what [`crate::serve`],
/// [`crate::accept`], [`crate::MeshListener::new`] and [`crate::serve_tcp`] use.
///
/// ```
/// # use std::time::Duration;
/// let options = smi_server::ServeOptions::default()
///     .idle_timeout(Some(Duration::from_secs(60)))
///     .max_connections_per_peer(64);
/// # assert_eq!(options.max_connections_per_peer, 64);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeOptions {
    /// How long a client may take from the TCP accept to a completed TLS handshake; one that
    /// sends nothing is closed after it. Default 10 s ([`smi_tls::accept::HANDSHAKE_TIMEOUT`]).
    pub handshake_timeout: Duration,
    /// How long a client may take to send a request head. Before the first request it bounds
    /// the whole wait (HTTP/1 and HTTP/2: a client that completes TLS and sends nothing, or
    /// only an HTTP/2 preface, is closed after it). On HTTP/1 hyper also starts this clock
    /// whenever it waits for the next request head, so a kept-alive HTTP/1 connection that
    /// sends no next request within it is closed too. `None`: no limit. Default 10 s.
    pub header_read_timeout: Option<Duration>,
    /// A connection with no request in flight for this long is closed gracefully (HTTP/2
    /// GOAWAY, HTTP/1 close); one still open after a second such period is cut. A request is in
    /// flight from its head until its response body is finished or dropped, so long streams
    /// are never cut by it. `None`: no limit. Default 5 min (longer than the HTTP/2 keepalive,
    /// shorter than typical client pools hold a connection they do not use).
    pub idle_timeout: Option<Duration>,
    /// HTTP/2: how often the server pings a connection that has been quiet, and how long it
    /// waits for the answer before closing it (a peer that vanished without a FIN). `None`: no
    /// pings. Default 60 s and 20 s (hyper's default timeout).
    pub http2_keep_alive_interval: Option<Duration>,
    pub http2_keep_alive_timeout: Duration,
    /// Open connections per peer SPIFFE ID on one listener; the next one is closed right
    /// after its handshake (logged at info, at most once a second per peer). Default 256.
    pub max_connections_per_peer: usize,
    /// Open connections on one listener, all peers together. Default 10 000.
    pub max_connections: usize,
    /// Whether requests may take over their connection: HTTP/1.1 `Upgrade` (WebSocket),
    /// CONNECT, HTTP/2 extended CONNECT. Off by default: the application never sees an
    /// upgrade (hyper's `upgrade::on` fails at once, axum's `WebSocketUpgrade` answers 426).
    /// On: an upgraded stream belongs to the application, but it is still shut down when a
    /// policy change takes the peer's access away, and it keeps its connection slot.
    pub upgrades: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: smi_tls::accept::HANDSHAKE_TIMEOUT,
            header_read_timeout: Some(Duration::from_secs(10)),
            idle_timeout: Some(Duration::from_secs(300)),
            http2_keep_alive_interval: Some(Duration::from_secs(60)),
            http2_keep_alive_timeout: Duration::from_secs(20),
            max_connections_per_peer: 256,
            max_connections: 10_000,
            upgrades: false,
        }
    }
}

impl ServeOptions {
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    #[must_use]
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    #[must_use]
    pub fn http2_keep_alive(mut self, interval: Option<Duration>, timeout: Duration) -> Self {
        self.http2_keep_alive_interval = interval;
        self.http2_keep_alive_timeout = timeout;
        self
    }

    #[must_use]
    pub fn max_connections_per_peer(mut self, max: usize) -> Self {
        self.max_connections_per_peer = max;
        self
    }

    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// Lets requests upgrade their connection (see [`ServeOptions::upgrades`]).
    #[must_use]
    pub fn upgrades(mut self, enabled: bool) -> Self {
        self.upgrades = enabled;
        self
    }
}
