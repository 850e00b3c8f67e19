//! Report: a workload's traffic statistics since its previous report, counted once per
//! (instance, sequence). The caller's identity comes from its certificate; the workload and
//! pod it reports as are in that identity's namespace.

use smi_core::proto::v1;
use tonic::{Request, Response, Status};

use super::{ControlApi, exhausted};
use crate::status::Counters;
use crate::telemetry::Ingested;
use crate::wire;
use crate::wire::report::ReportRefused;

pub(super) async fn report(
    api: &ControlApi,
    request: Request<v1::ReportRequest>,
) -> Result<Response<v1::ReportResponse>, Status> {
    let peer = api.peer(&request)?;
    let refuse = |status: Status| {
        Counters::inc(&api.telemetry.counters.reports_refused);
        tracing::info!(identity = %peer.spiffe_id, reason = %status.message(), "report refused");
        status
    };
    let certified = peer.workload.as_ref();
    let request = request.into_inner();
    let report =
        wire::report::report(&peer.spiffe_id, certified, request, &api.quotas).map_err(|e| {
            refuse(match e {
                ReportRefused::Invalid { .. } => Status::invalid_argument(e.to_string()),
                ReportRefused::Quota(e) => exhausted(e),
            })
        })?;
    let counted = match api.telemetry.ingest(&peer.spiffe_id.account, report) {
        Ok(Ingested::Counted { dropped }) => {
            if dropped > 0 {
                tracing::debug!(identity = %peer.spiffe_id, dropped, "new series over the pod's limit dropped");
            }
            true
        }
        Ok(Ingested::Repeated) => false,
        Err(e) => return Err(refuse(exhausted(e))),
    };
    Ok(Response::new(v1::ReportResponse { counted }))
}
