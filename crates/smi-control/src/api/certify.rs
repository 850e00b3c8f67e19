//! Certify: a certificate for whoever the credential proves the caller is.

use std::time::{Duration, SystemTime};

use smi_core::proto::v1;
use smi_core::telemetry::Workload;
use tonic::{Request, Response, Status};

use super::ControlApi;
use crate::ca::CaError;
use crate::enroll::Refusal;
use crate::revocation::IssueError;
use crate::status::Counters;
use crate::traits::Credential;
use crate::wire;

pub(super) async fn certify(
    api: &ControlApi,
    request: Request<v1::CertifyRequest>,
) -> Result<Response<v1::CertifyResponse>, Status> {
    let peer_certs = request.peer_certs();
    let req = request.into_inner();
    let credential = Credential {
        token: Some(req.token.as_str()).filter(|t| !t.is_empty()),
        peer_certificates: peer_certs.as_deref().map(Vec::as_slice),
    };
    let refuse = |status: Status| {
        Counters::inc(&api.status.counters.certificates_refused);
        tracing::info!(reason = %status.message(), "certificate refused");
        status
    };
    let grant = api
        .authenticators
        .authenticate(&credential)
        .await
        .map_err(|r| refuse(status_of_refusal(&r)))?;
    // Revoked identities and tokens get nothing; a token's use counts only once a
    // certificate is issued.
    api.revocations
        .admit(&grant)
        .map_err(|r| refuse(Status::permission_denied(r.to_string())))?;
    // The names to write into the certificate: the request's (checked here, in the granted
    // identity's namespace), else those of the certificate being renewed. Names with both
    // fields empty are no names.
    let names = match req.names.as_ref() {
        // A pod the API server vouches for: its names, not the ones asked for.
        _ if grant.names_proven => grant.workload.clone(),
        Some(n) if !(n.workload.is_empty() && n.pod.is_empty()) => {
            let names = Workload::new(&grant.identity.namespace, &n.workload, &n.pod);
            names
                .check()
                .map_err(|e| refuse(Status::invalid_argument(format!("names: {e}"))))?;
            Some(names)
        }
        _ => grant.workload.clone(),
    };
    let ca = api.ca.load_full();
    // No certificate outlives its chain's maximum lifetime.
    let chain_left = (grant.first_enrolled + api.max_chain_lifetime)
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .max(Duration::from_secs(1));
    let ttl = api.certificate_ttl.min(chain_left);
    // Off the runtime's threads: spending a join token reads and writes the state store (a
    // file sync, or etcd round trips that may take seconds while a member is away), which
    // must not stall the Watch and Register streams served beside it.
    let issued = {
        let (revocations, ca) = (api.revocations.clone(), ca.clone());
        let (grant, names) = (grant.clone(), names.clone());
        tokio::task::spawn_blocking(move || {
            revocations.issue(&grant, || {
                ca.issue_workload_named(
                    &req.csr_der,
                    &grant.identity,
                    &grant.serves,
                    ttl,
                    grant.first_enrolled,
                    names.as_ref(),
                )
            })
        })
        .await
        .map_err(|e| refuse(Status::internal(format!("issuing: {e}"))))?
        .map_err(|e| refuse(status_of(e)))?
    };
    Counters::inc(&api.status.counters.certificates_issued);
    tracing::debug!(identity = %issued.spiffe_id, via = %grant.via, workload = ?names, "certificate issued");
    Ok(Response::new(wire::certified(&issued, ca.bundle())))
}

/// A credential refused is `UNAUTHENTICATED`; one that could not be judged (the Kubernetes API
/// is down) is `UNAVAILABLE`, so that the workload retries.
fn status_of_refusal(r: &Refusal) -> Status {
    if r.is_unavailable() {
        Status::unavailable(r.to_string())
    } else {
        Status::unauthenticated(r.to_string())
    }
}

fn status_of(e: IssueError) -> Status {
    match e {
        IssueError::Refused(r) => Status::permission_denied(r.to_string()),
        IssueError::Ledger(_) => Status::unavailable(e.to_string()),
        IssueError::Ca(
            e @ (CaError::BadCsr(_) | CaError::Names(_) | CaError::ForeignNamespace { .. }),
        ) => Status::invalid_argument(e.to_string()),
        IssueError::Ca(e @ (CaError::ForeignSan { .. } | CaError::Reserved(_))) => {
            Status::permission_denied(e.to_string())
        }
        IssueError::Ca(e @ CaError::Sign(_)) => Status::internal(e.to_string()),
    }
}
