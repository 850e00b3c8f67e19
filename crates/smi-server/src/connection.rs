//! One served connection's life: the HTTP connection runs until it ends, until it has been idle
//! too long, or until a policy change takes the peer's access away; with upgrades on, a stream
//! the application took over is still shut down on such a change.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use smi_client::PolicyHandle;
use tokio::sync::watch;

use crate::in_flight::Activity;
use crate::peer::Peer;
use crate::upgrade::Handle;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long a connection whose peer lost access may finish the requests it has in flight.
const REVOKED_GRACE: Duration = Duration::from_millis(300);

/// What a connection task needs besides the connection.
pub(crate) struct Context {
    pub(crate) policy: PolicyHandle,
    pub(crate) peer: Peer,
    pub(crate) activity: Arc<Activity>,
    pub(crate) header_read_timeout: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    /// The socket of a connection served with upgrades.
    pub(crate) upgrades: Option<Handle>,
}

/// Runs `connection` (an `auto::Connection` or `auto::UpgradeableConnection`, which share no
/// trait: `graceful_shutdown` is passed in) to its end.
pub(crate) async fn run<C>(connection: C, graceful_shutdown: fn(Pin<&mut C>), mut cx: Context)
where
    C: Future<Output = Result<(), BoxError>>,
{
    let socket = cx.upgrades.take();
    let mut access = Access::new(cx.policy.clone(), cx.peer.clone());
    let ended = http(connection, graceful_shutdown, &mut access, &cx).await;
    // The HTTP connection has been dropped. Without an upgrade its IO went with it; with one,
    // the application holds the IO now.
    let Some(mut socket) = socket else { return };
    match ended {
        Ended::Closed => tokio::select! {
            () = socket.dropped() => {}
            lost = access.lost() => {
                if lost == Lost::Access {
                    tracing::info!(peer = %cx.peer.identity, "no longer allowed; closing its upgraded connection");
                }
                socket.shutdown();
            }
        },
        Ended::Revoked => socket.shutdown(),
    }
}

#[derive(Debug)]
enum Ended {
    /// The connection ended on its own, or was closed for being idle.
    Closed,
    Revoked,
}

async fn http<C>(
    connection: C,
    graceful_shutdown: fn(Pin<&mut C>),
    access: &mut Access,
    cx: &Context,
) -> Ended
where
    C: Future<Output = Result<(), BoxError>>,
{
    let (peer, activity) = (&cx.peer, &cx.activity);
    let (first, idle_timeout) = (cx.header_read_timeout, cx.idle_timeout);
    let addr = peer.addr;
    let mut connection = pin!(connection);
    let mut idle = pin!(activity.idle(first, idle_timeout));
    let mut closing = false;
    loop {
        tokio::select! {
            result = &mut connection => {
                if let Err(e) = result {
                    tracing::debug!(%addr, error = %e, "inbound connection ended with an error");
                }
                return Ended::Closed;
            }
            () = &mut idle => {
                if closing {
                    // Still open a whole idle period after the GOAWAY (a client that ignores
                    // it): cut.
                    tracing::debug!(%addr, "idle inbound connection did not close; cutting it");
                    return Ended::Closed;
                }
                tracing::debug!(%addr, "inbound connection idle; closing it");
                graceful_shutdown(connection.as_mut());
                closing = true;
                idle.set(activity.idle(first, idle_timeout));
            }
            lost = access.lost() => {
                if lost == Lost::MeshGone {
                    return Ended::Revoked;
                }
                tracing::info!(peer = %peer.identity, "no longer allowed; closing its connection");
                // GOAWAY first: requests already on the wire are still answered (403 from here
                // on), the client opens a new connection for the next ones; streams still open
                // after the grace are cut.
                graceful_shutdown(connection.as_mut());
                let _ = tokio::time::timeout(REVOKED_GRACE, &mut connection).await;
                return Ended::Revoked;
            }
        }
    }
}

/// Whether the peer may reach us at all, followed across policy changes. Requests are
/// authorized one by one; a long-lived stream was authorized when it started. When a policy
/// change takes away the last TrafficTarget that let the peer reach us, its connection (with
/// its streams) is closed. A peer that never had one keeps its connection: its requests get
/// 403s, not resets.
struct Access {
    policy: PolicyHandle,
    peer: Peer,
    admitted: bool,
    changes: watch::Receiver<u64>,
}

#[derive(Debug, PartialEq, Eq)]
enum Lost {
    Access,
    /// The mesh stopped: no more policy, so nothing is allowed any more.
    MeshGone,
}

impl Access {
    fn new(policy: PolicyHandle, peer: Peer) -> Self {
        let changes = policy.changed();
        let mut access = Self {
            policy,
            peer,
            admitted: false,
            changes,
        };
        access.admitted = access.admits();
        access
    }

    fn admits(&self) -> bool {
        self.policy
            .load()
            .snapshot
            .admits_any(self.policy.identity(), &self.peer.identity)
    }

    /// Resolves when a policy change takes the peer's access away. Cancel safe.
    async fn lost(&mut self) -> Lost {
        loop {
            if self.changes.changed().await.is_err() {
                return Lost::MeshGone;
            }
            let now = self.admits();
            if self.admitted && !now {
                return Lost::Access;
            }
            self.admitted = now;
        }
    }
}
