//! TLS accept for tokio listeners, with a hot-swappable `rustls::ServerConfig` (workload servers
//! and the control API alike).
//!
//! Handshakes run in their own tasks (bounded by a timeout), so a slow or hostile client never
//! holds up the accept loop; failed handshakes are logged at debug and dropped.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

/// A `ServerConfig` that can be replaced while listeners use it.
pub type SharedServerConfig = Arc<ArcSwap<ServerConfig>>;

/// How long a client may take to complete the TLS handshake (the default of
/// `smi_server::ServeOptions::handshake_timeout`).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many handshakes run at once per listener; a connection accepted beyond it is
/// closed at once, so clients that connect and send nothing cannot hold every file descriptor
/// (each is also cut at the handshake timeout).
pub const MAX_HANDSHAKES: usize = 1_024;

/// Accepts TCP connections on `listener` and completes TLS handshakes with the config current
/// at accept time, each within [`HANDSHAKE_TIMEOUT`]. The stream ends when the listener fails
/// permanently; dropping the stream closes the listener.
pub fn incoming(
    listener: TcpListener,
    config: SharedServerConfig,
) -> ReceiverStream<io::Result<TlsStream<TcpStream>>> {
    incoming_with(listener, config, HANDSHAKE_TIMEOUT)
}

/// [`incoming`] with another handshake timeout: a client that has not completed its handshake
/// `handshake_timeout` after the TCP accept (one that sends nothing, or trickles) is closed.
pub fn incoming_with(
    listener: TcpListener,
    config: SharedServerConfig,
    handshake_timeout: Duration,
) -> ReceiverStream<io::Result<TlsStream<TcpStream>>> {
    let (tx, rx) = mpsc::channel(256);
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let mut last_refusal_log: Option<std::time::Instant> = None;
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_transient(&e) => {
                    tracing::warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "listener failed");
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                if last_refusal_log.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                    last_refusal_log = Some(std::time::Instant::now());
                    tracing::info!(%peer, limit = MAX_HANDSHAKES, "too many TLS handshakes in progress; closing new connections");
                }
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = TlsAcceptor::from(config.load_full());
            let handshake_tx = tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let tx = handshake_tx;
                match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Errors after which accepting again can succeed (e.g. out of file descriptors for a moment).
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || e
        .raw_os_error()
        .is_some_and(|code| code == 24 || code == 23) // EMFILE, ENFILE
}
