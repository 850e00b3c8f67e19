//! The control API (tonic): Certify, Watch, Ack, Register, Report. Protobuf stops here: requests are
//! read and answers made through [`crate::wire`]; everything behind it is domain types.

mod certify;
mod register;
mod report;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use smi_core::proto::v1::{self, control_server::Control};
use smi_tls::{PeerIdentity, peer_identity};
use tokio::sync::watch as signal;
use tonic::{Request, Response, Status, Streaming};

use crate::ca::Authority;
use crate::hub::Hub;
use crate::quota::{Exceeded, Quotas, StreamCounts};
use crate::registry::Registry;
use crate::revocation::Revocations;
use crate::status::Status as ControlStatus;
use crate::telemetry::TelemetryStore;
use crate::traits::Authenticators;

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
    pub stopping: signal::Receiver<bool>,
    /// The deny list and the join tokens' use counts: consulted before each certificate.
    pub revocations: Arc<Revocations>,
    /// Where Report calls go (and the TrafficMetrics API reads).
    pub telemetry: Arc<TelemetryStore>,
}

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
        certify::certify(self, request).await
    }

    type WatchStream = watch::UpdateStream;

    async fn watch(
        &self,
        request: Request<v1::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        watch::watch(self, request).await
    }

    async fn ack(
        &self,
        request: Request<v1::AckRequest>,
    ) -> Result<Response<v1::AckResponse>, Status> {
        watch::ack(self, request).await
    }

    type RegisterStream = register::RegisterStream;

    async fn register(
        &self,
        request: Request<Streaming<v1::RegisterRequest>>,
    ) -> Result<Response<Self::RegisterStream>, Status> {
        register::register(self, request).await
    }

    async fn report(
        &self,
        request: Request<v1::ReportRequest>,
    ) -> Result<Response<v1::ReportResponse>, Status> {
        report::report(self, request).await
    }
}
