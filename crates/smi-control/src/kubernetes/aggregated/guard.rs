//! Every request but the health checks: authenticated by the front proxy's headers
//! ([`super::requestheader`]), authorized by a SubjectAccessReview ([`super::review`]), and
//! only then routed. The user headers are removed before the routes see the request.
//!
//! | outcome | answer |
//! |---|---|
//! | no certificate, an untrusted one, a CN not allowed, no username header | 401 `Unauthorized` |
//! | the review denies | 403 `Forbidden`, Kubernetes' message |
//! | the review could not be made | 500 `InternalError` (as kube-apiserver) |
//! | a path that does not percent-decode | 400 `BadRequest` |

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::attributes::Attributes;
use super::listener::Peer;
use super::requestheader::FrontProxy;
use super::review::{Decision, Reviewer};
use super::status;

/// Paths served to anyone (kubelet probes): k8s.io/apiserver's `AlwaysAllowPaths`.
pub const HEALTH_PATHS: [&str; 3] = ["/healthz", "/livez", "/readyz"];

/// What the guard reads: the front proxy in force, and the reviewer.
#[derive(Clone, Debug)]
pub struct Gate {
    pub front: Arc<ArcSwap<FrontProxy>>,
    pub reviewer: Arc<Reviewer>,
}

pub async fn guard(
    State(gate): State<Gate>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    mut request: Request,
    next: Next,
) -> Response {
    if HEALTH_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    // A whole snapshot for this request (an Arc, not a borrow of the swap).
    let front = gate.front.load_full();
    let user = peer
        .front_proxy(&front)
        .and_then(|()| front.user(request.headers()));
    let user = match user {
        Ok(user) => user,
        Err(why) => {
            tracing::info!(peer = %peer.addr, path = request.uri().path(), reason = %why, "aggregated API request unauthenticated");
            return status::unauthorized();
        }
    };
    front.strip(request.headers_mut());
    let uri = request.uri();
    let attributes = match Attributes::of(request.method(), uri.path(), uri.query()) {
        Ok(attributes) => attributes,
        Err(e) => return status::bad_request(&e.to_string()),
    };
    match gate.reviewer.review(&user, &attributes).await {
        Ok(Decision::Allowed) => {
            tracing::debug!(
                user = user.name,
                ?attributes,
                "aggregated API request allowed"
            );
        }
        Ok(Decision::Denied { reason }) => {
            tracing::info!(user = user.name, groups = ?user.groups, ?attributes, reason, "aggregated API request forbidden");
            return status::forbidden(&attributes, &user.name, &reason);
        }
        Err(e) => {
            tracing::warn!(user = user.name, ?attributes, error = %e, "aggregated API request not authorized: the review failed");
            return status::authorization_error();
        }
    }
    next.run(request).await
}
