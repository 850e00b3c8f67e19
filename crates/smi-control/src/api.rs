//! The control API (tonic): Certify, Watch, Ack, Register.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use aws_lc_rs::digest;
use prost::Message;
use smi_core::ServiceRef;
use smi_core::proto::v1::{self, control_server::Control};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, WatchStream};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use smi_tls::{PeerIdentity, peer_identity};

use crate::ca::{Authority, CaError};
use crate::chunk::{CHUNK_BYTES, chunks};
use crate::distribute::{Hub, Subscription};
use crate::enroll::{Authenticators, Credential};
use crate::quota::{Exceeded, Quotas, StreamCounts, StreamSlot, at_most};
use crate::registry::{RegisterError, Registry};
use crate::revocation::{IssueError, Revocations};
use crate::status::{Counters, Session, Status as ControlStatus, unix, unix_now};

/// Everything the API needs; cheap to clone into tonic.
#[derive(Clone, Debug)]
pub struct ControlApi {
    pub ca: Arc<ArcSwap<Authority>>,
    pub authenticators: Authenticators,
    pub hub: Arc<Hub>,
    pub registry: Arc<Registry>,
    pub status: Arc<ControlStatus>,
    pub certificate_ttl: Duration,
    /// How long a chain of renewals lasts from its first enrollment; no certificate outlives it.
    pub max_chain_lifetime: Duration,
    pub lease: Duration,
    pub quotas: Quotas,
    /// Open Watch streams, per identity and per connection.
    pub watches: Arc<StreamCounts>,
    /// Open Register streams, per identity.
    pub registrations: Arc<StreamCounts>,
    /// Becomes `true` when the service stops: open streams end, so that shutdown completes.
    pub stopping: watch::Receiver<bool>,
    /// The deny list and the join tokens' use counts: consulted before each certificate.
    pub revocations: Arc<Revocations>,
}

type UpdateStream = Pin<Box<dyn Stream<Item = Result<v1::PolicyUpdate, Status>> + Send>>;

/// A count over its quota is `RESOURCE_EXHAUSTED`, a string over its length `INVALID_ARGUMENT`.
fn exhausted(e: Exceeded) -> Status {
    Status::resource_exhausted(e.to_string())
}

fn too_long(e: Exceeded) -> Status {
    Status::invalid_argument(e.to_string())
}

impl ControlApi {
    /// The caller's identity, from the client certificate the TLS handshake verified.
    fn peer<T>(&self, request: &Request<T>) -> Result<PeerIdentity, Status> {
        let certs = request.peer_certs().ok_or_else(|| {
            Status::unauthenticated(
                "this call needs a workload certificate (mTLS): enroll with Certify first",
            )
        })?;
        let leaf = certs
            .first()
            .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
        let peer = peer_identity(leaf).map_err(|e| Status::unauthenticated(e.to_string()))?;
        let ours = self.ca.load();
        if peer.spiffe_id.trust_domain != ours.trust_domain() {
            return Err(Status::unauthenticated(format!(
                "identity {} is not in trust domain {}",
                peer.spiffe_id,
                ours.trust_domain()
            )));
        }
        self.revocations
            .check_caller(&peer.spiffe_id.account)
            .map_err(|r| Status::permission_denied(r.to_string()))?;
        Ok(peer)
    }
}

#[tonic::async_trait]
impl Control for ControlApi {
    async fn certify(
        &self,
        request: Request<v1::CertifyRequest>,
    ) -> Result<Response<v1::CertifyResponse>, Status> {
        let peer_certs = request.peer_certs();
        let req = request.into_inner();
        let credential = Credential {
            token: Some(req.token.as_str()).filter(|t| !t.is_empty()),
            peer_certificates: peer_certs.as_deref().map(Vec::as_slice),
        };
        let refuse = |status: Status| {
            Counters::inc(&self.status.counters.certificates_refused);
            tracing::info!(reason = %status.message(), "certificate refused");
            status
        };
        let grant = self
            .authenticators
            .authenticate(&credential)
            .map_err(|r| refuse(Status::unauthenticated(r.to_string())))?;
        // Revoked identities and tokens get nothing; a token's use counts only once a
        // certificate is issued.
        self.revocations
            .admit(&grant)
            .map_err(|r| refuse(Status::permission_denied(r.to_string())))?;
        let ca = self.ca.load();
        // No certificate outlives its chain's maximum lifetime.
        let chain_left = (grant.first_enrolled + self.max_chain_lifetime)
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default()
            .max(Duration::from_secs(1));
        let ttl = self.certificate_ttl.min(chain_left);
        let issued = self
            .revocations
            .issue(&grant, || {
                ca.issue_workload_since(
                    &req.csr_der,
                    &grant.identity,
                    &grant.serves,
                    ttl,
                    grant.first_enrolled,
                )
            })
            .map_err(|e| {
                refuse(match e {
                    IssueError::Refused(r) => Status::permission_denied(r.to_string()),
                    IssueError::Ledger(_) => Status::unavailable(e.to_string()),
                    IssueError::Ca(e @ CaError::BadCsr(_)) => {
                        Status::invalid_argument(e.to_string())
                    }
                    IssueError::Ca(e @ (CaError::ForeignSan { .. } | CaError::Reserved(_))) => {
                        Status::permission_denied(e.to_string())
                    }
                    IssueError::Ca(e @ CaError::Sign(_)) => Status::internal(e.to_string()),
                })
            })?;
        Counters::inc(&self.status.counters.certificates_issued);
        tracing::debug!(identity = %issued.spiffe_id, via = %grant.via, "certificate issued");
        Ok(Response::new(v1::CertifyResponse {
            certificate_chain_der: issued.chain.iter().map(|c| c.to_vec()).collect(),
            trust_bundle_der: ca.bundle().iter().map(|c| c.to_vec()).collect(),
            not_after_unix: i64::try_from(unix(issued.not_after)).unwrap_or(i64::MAX),
            spiffe_id: issued.spiffe_id.to_string(),
        }))
    }

    type WatchStream = UpdateStream;

    async fn watch(
        &self,
        request: Request<v1::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let peer = self.peer(&request)?;
        let connection = request.remote_addr();
        let req = request.into_inner();
        let q = &self.quotas;
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
        let slot = self
            .watches
            .acquire(&peer.spiffe_id, connection)
            .map_err(|e| {
                tracing::info!(identity = %peer.spiffe_id, reason = %e, "Watch refused");
                exhausted(e)
            })?;
        let all = req.services.iter().any(|s| s == "*");
        let calls = req
            .services
            .iter()
            .filter(|s| *s != "*")
            .map(|s| {
                s.parse::<ServiceRef>()
                    .map_err(|e| Status::invalid_argument(format!("services: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let session = SessionGuard {
            _slot: slot,
            status: self.status.clone(),
            id: self.status.open_session(Session {
                identity: peer.spiffe_id.to_string(),
                workload: req.workload.clone(),
                calls: req.services.clone(),
                connected_at_unix: unix_now(),
                sent_version: 0,
                acked_version: 0,
                current_version: 0,
                rejected: None,
                certificate_expires_unix: unix(peer.not_after),
            }),
        };
        tracing::debug!(identity = %peer.spiffe_id, workload = %req.workload, "workload subscribed");
        let subscription = Subscription {
            identity: peer.spiffe_id.account.clone(),
            serves: peer.serves,
            calls,
            all,
        };
        // Each item is computed from the newest published state when the stream is polled, so
        // a subscriber that reads slowly skips versions instead of queueing them. A view too
        // large for one message goes out in chunks of one version.
        // A caller revoked while its stream is open gets no further view: the stream ends with
        // the reason (its reconnection is refused in `peer`).
        let own_id = peer.spiffe_id.to_string();
        // What was sent last, as a digest: each stream keeps 32 bytes, not a copy of its view.
        let mut last: Option<digest::Digest> = None;
        let views = WatchStream::new(self.hub.subscribe()).filter_map(move |published| {
            if published.revoked.binary_search(&own_id).is_ok() {
                return Some(vec![Err(Status::permission_denied(format!(
                    "{own_id} is revoked: it gets no more policy"
                )))]);
            }
            let mut view = published.view(&subscription);
            let version = view.version;
            view.version = 0;
            let sent = digest::digest(&digest::SHA256, &view.encode_to_vec());
            if last.is_some_and(|l| l.as_ref() == sent.as_ref()) {
                session.status.evaluated(session.id, version, false);
                return None;
            }
            last = Some(sent);
            view.version = version;
            session.status.evaluated(session.id, version, true);
            Some(chunks(view, CHUNK_BYTES).into_iter().map(Ok).collect())
        });
        let updates = futures_util::StreamExt::flat_map(views, futures_util::stream::iter);
        Ok(Response::new(Box::pin(until_stopping(
            updates,
            self.stopping.clone(),
        ))))
    }

    async fn ack(
        &self,
        request: Request<v1::AckRequest>,
    ) -> Result<Response<v1::AckResponse>, Status> {
        let peer = self.peer(&request)?;
        let ack = request.into_inner();
        let q = &self.quotas;
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
        self.status.ack(
            &peer.spiffe_id.to_string(),
            &ack.workload,
            ack.version,
            rejected,
        );
        Ok(Response::new(v1::AckResponse {}))
    }

    type RegisterStream = ReceiverStream<Result<v1::RegisterResponse, Status>>;

    async fn register(
        &self,
        request: Request<Streaming<v1::RegisterRequest>>,
    ) -> Result<Response<Self::RegisterStream>, Status> {
        let peer = self.peer(&request)?;
        let slot = self
            .registrations
            .acquire(&peer.spiffe_id, None)
            .map_err(exhausted)?;
        let mut inbound = request.into_inner();
        let lease = self.lease;
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
        let id = self
            .registry
            .register(&peer.spiffe_id, &peer.serves, &first.endpoints)
            .map_err(|e| {
                Counters::inc(&self.status.counters.registrations_refused);
                tracing::info!(identity = %peer.spiffe_id, reason = %e, "registration refused");
                match e {
                    RegisterError::NotGranted { .. } => Status::permission_denied(e.to_string()),
                    RegisterError::Invalid { .. } => Status::invalid_argument(e.to_string()),
                    RegisterError::Quota(e) => exhausted(e),
                }
            })?;
        let ack = v1::RegisterResponse {
            lease_seconds: u32::try_from(lease.as_secs()).unwrap_or(u32::MAX),
            registered: u32::try_from(first.endpoints.len()).unwrap_or(u32::MAX),
        };
        let (tx, rx) = mpsc::channel(4);
        let _ = tx.send(Ok(ack)).await;
        let registry = self.registry.clone();
        let mut stopping = self.stopping.clone();
        // Revoking the identity ends its registrations: its endpoints leave every view.
        let mut published = self.hub.subscribe();
        let own_id = peer.spiffe_id.to_string();
        tokio::spawn(async move {
            let _slot: StreamSlot = slot;
            loop {
                let heartbeat = tokio::select! {
                    heartbeat = tokio::time::timeout(lease, inbound.message()) => heartbeat,
                    _ = stopping.wait_for(|stop| *stop) => break,
                    revoked = async {
                        published
                            .wait_for(|p| p.revoked.binary_search(&own_id).is_ok())
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
