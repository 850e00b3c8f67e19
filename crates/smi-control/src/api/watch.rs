//! Watch and Ack: each workload's view of the newest published state, as it changes, and its
//! acknowledgements.

use std::pin::Pin;
use std::sync::Arc;

use aws_lc_rs::digest;
use prost::Message;
use smi_core::proto::v1;
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::{ControlApi, exhausted, too_long};
use crate::chunk::{CHUNK_BYTES, chunks};
use crate::quota::{StreamSlot, at_most};
use crate::status::{Session, SessionNames, Status as ControlStatus, unix, unix_now};
use crate::wire;

pub(super) type UpdateStream = Pin<Box<dyn Stream<Item = Result<v1::PolicyUpdate, Status>> + Send>>;

pub(super) async fn watch(
    api: &ControlApi,
    request: Request<v1::WatchRequest>,
) -> Result<Response<UpdateStream>, Status> {
    let peer = api.peer(&request)?;
    let connection = request.remote_addr();
    let req = request.into_inner();
    let q = &api.quotas;
    at_most(
        req.services.len(),
        q.services_per_watch,
        "services in one Watch",
    )
    .map_err(exhausted)?;
    at_most(
        req.workload.len(),
        q.workload_name_bytes,
        "bytes of the workload name",
    )
    .map_err(too_long)?;
    let slot = api
        .watches
        .acquire(&peer.spiffe_id, connection)
        .map_err(|e| {
            tracing::info!(identity = %peer.spiffe_id, reason = %e, "Watch refused");
            exhausted(e)
        })?;
    let subscription = wire::subscription(&peer, &req.services)
        .map_err(|e| Status::invalid_argument(format!("services: {e}")))?;
    let session = SessionGuard {
        _slot: slot,
        status: api.status.clone(),
        id: api.status.open_session(Session {
            identity: peer.spiffe_id.to_string(),
            workload: req.workload.clone(),
            calls: req.services.clone(),
            connected_at_unix: unix_now(),
            sent_version: 0,
            acked_version: 0,
            current_version: 0,
            rejected: None,
            certificate_expires_unix: unix(peer.not_after),
            names: peer.workload.as_ref().map(|w| SessionNames {
                workload: w.name.clone(),
                pod: w.pod.clone(),
            }),
        }),
    };
    tracing::debug!(identity = %peer.spiffe_id, workload = %req.workload, "workload subscribed");
    // Each item is computed from the newest published state when the stream is polled, so
    // a subscriber that reads slowly skips versions instead of queueing them. A view too
    // large for one message goes out in chunks of one version.
    // A caller revoked while its stream is open gets no further view: the stream ends with
    // the reason (its reconnection is refused in `peer`).
    let own_id = peer.spiffe_id;
    // What was sent last, as a digest: each stream keeps 32 bytes, not a copy of its view.
    let mut last: Option<digest::Digest> = None;
    let views = WatchStream::new(api.hub.subscribe()).filter_map(move |published| {
        if published.is_revoked(&own_id) {
            return Some(vec![Err(Status::permission_denied(format!(
                "{own_id} is revoked: it gets no more policy"
            )))]);
        }
        let mut update = wire::policy_update(&published.view(&subscription));
        let version = update.version;
        update.version = 0;
        let sent = digest::digest(&digest::SHA256, &update.encode_to_vec());
        if last.is_some_and(|l| l.as_ref() == sent.as_ref()) {
            session.status.evaluated(session.id, version, false);
            return None;
        }
        last = Some(sent);
        update.version = version;
        session.status.evaluated(session.id, version, true);
        Some(chunks(update, CHUNK_BYTES).into_iter().map(Ok).collect())
    });
    let updates = futures_util::StreamExt::flat_map(views, futures_util::stream::iter);
    Ok(Response::new(Box::pin(until_stopping(
        updates,
        api.stopping.clone(),
    ))))
}

pub(super) async fn ack(
    api: &ControlApi,
    request: Request<v1::AckRequest>,
) -> Result<Response<v1::AckResponse>, Status> {
    let peer = api.peer(&request)?;
    let ack = request.into_inner();
    let q = &api.quotas;
    at_most(
        ack.error.len(),
        q.ack_error_bytes,
        "bytes of the rejection reason",
    )
    .map_err(too_long)?;
    at_most(
        ack.workload.len(),
        q.workload_name_bytes,
        "bytes of the workload name",
    )
    .map_err(too_long)?;
    let rejected = (!ack.accepted).then(|| ack.error.clone());
    if let Some(reason) = &rejected {
        tracing::warn!(identity = %peer.spiffe_id, version = ack.version, %reason, "workload rejected a policy update");
    }
    api.status.ack(
        &peer.spiffe_id.to_string(),
        &ack.workload,
        ack.version,
        rejected,
    );
    Ok(Response::new(v1::AckResponse {}))
}

/// Ends `stream` when the service starts stopping (a server stream never ends by itself, and
/// graceful shutdown waits for open streams).
fn until_stopping<S>(stream: S, stopping: watch::Receiver<bool>) -> impl Stream<Item = S::Item>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    let stop = WatchStream::new(stopping)
        .filter(|stop| *stop)
        .map(|_| None);
    stream
        .map(Some)
        .merge(stop)
        .take_while(Option::is_some)
        .filter_map(|item| item)
}

/// Removes the admin view's session when the Watch stream ends, and frees its quota slot.
struct SessionGuard {
    _slot: StreamSlot,
    status: Arc<ControlStatus>,
    id: u64,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.status.close_session(self.id);
    }
}
