//! Register: the endpoints a serving workload announces, held while its stream lives and its
//! heartbeats come within the lease.

use smi_core::proto::v1;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{ControlApi, exhausted};
use crate::quota::StreamSlot;
use crate::registry::RegisterError;
use crate::status::Counters;
use crate::wire;

pub(super) type RegisterStream = ReceiverStream<Result<v1::RegisterResponse, Status>>;

pub(super) async fn register(
    api: &ControlApi,
    request: Request<Streaming<v1::RegisterRequest>>,
) -> Result<Response<RegisterStream>, Status> {
    let peer = api.peer(&request)?;
    let slot = api
        .registrations
        .acquire(&peer.spiffe_id, None)
        .map_err(exhausted)?;
    let mut inbound = request.into_inner();
    let lease = api.lease;
    let first = match tokio::time::timeout(lease, inbound.message()).await {
        Ok(Ok(Some(first))) if !first.endpoints.is_empty() => first,
        Ok(Ok(_)) => {
            return Err(Status::invalid_argument(
                "the first message must list endpoints",
            ));
        }
        Ok(Err(status)) => return Err(status),
        Err(_) => return Err(Status::deadline_exceeded("no endpoints within the lease")),
    };
    let id = api
        .registry
        .register(&peer.spiffe_id, &peer.serves, &first.endpoints)
        .map_err(|e| {
            Counters::inc(&api.status.counters.registrations_refused);
            tracing::info!(identity = %peer.spiffe_id, reason = %e, "registration refused");
            match e {
                RegisterError::NotGranted { .. } => Status::permission_denied(e.to_string()),
                RegisterError::Invalid { .. } => Status::invalid_argument(e.to_string()),
                RegisterError::Quota(e) => exhausted(e),
            }
        })?;
    let ack = wire::lease(lease, first.endpoints.len());
    let (tx, rx) = mpsc::channel(4);
    let _ = tx.send(Ok(ack)).await;
    let registry = api.registry.clone();
    let mut stopping = api.stopping.clone();
    // Revoking the identity ends its registrations: its endpoints leave every view.
    let mut published = api.hub.subscribe();
    let own_id = peer.spiffe_id;
    tokio::spawn(async move {
        let _slot: StreamSlot = slot;
        loop {
            let heartbeat = tokio::select! {
                heartbeat = tokio::time::timeout(lease, inbound.message()) => heartbeat,
                _ = stopping.wait_for(|stop| *stop) => break,
                revoked = async {
                    published
                        .wait_for(|p| p.is_revoked(&own_id))
                        .await
                        .is_ok()
                } => {
                    if revoked {
                        let _ = tx.try_send(Err(Status::permission_denied(format!(
                            "{own_id} is revoked: its endpoints are removed"
                        ))));
                    }
                    break;
                }
            };
            match heartbeat {
                Ok(Ok(Some(_heartbeat))) => {
                    if tx.send(Ok(ack)).await.is_err() {
                        break;
                    }
                }
                Ok(Ok(None) | Err(_)) => break,
                Err(_) => {
                    let _ = tx
                        .send(Err(Status::deadline_exceeded("lease lapsed: no heartbeat")))
                        .await;
                    break;
                }
            }
        }
        registry.remove(id);
        tracing::debug!(registration = id, "endpoints removed");
    });
    Ok(Response::new(ReceiverStream::new(rx)))
}
