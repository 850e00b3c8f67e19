//! Refusals as kube-apiserver writes them: a `Status` object (`kind: Status, apiVersion: v1,
//! status: Failure`) with its `reason` and `code`, which kubectl prints and client libraries
//! match on.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde_json::{Value, json};

use super::attributes::Attributes;

/// No user: no front-proxy certificate, or one not trusted, or no username header.
pub(super) fn unauthorized() -> Response {
    status(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "Unauthorized",
        None,
    )
}

/// `user` may not do what `attributes` say (`reason`: the review's, may be empty).
pub(super) fn forbidden(attributes: &Attributes, user: &str, reason: &str) -> Response {
    let details = match attributes {
        Attributes::Resource(r) => json!({"group": r.group, "kind": r.resource, "name": r.name}),
        Attributes::NonResource { .. } => json!({}),
    };
    let mut response = status(
        StatusCode::FORBIDDEN,
        "Forbidden",
        &attributes.forbidden_message(user, reason),
        Some(without_empty(details)),
    );
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The SubjectAccessReview could not be made: kube-apiserver's answer when its authorizer
/// fails (500, not 403: the user may well be allowed).
pub(super) fn authorization_error() -> Response {
    status(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        "Internal error occurred: authorization error",
        None,
    )
}

/// A path no request could have (bad percent-encoding).
pub(super) fn bad_request(message: &str) -> Response {
    status(StatusCode::BAD_REQUEST, "BadRequest", message, None)
}

/// Nothing is served at the path.
pub(super) async fn not_found() -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

fn status(code: StatusCode, reason: &str, message: &str, details: Option<Value>) -> Response {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    if let Some(details) = details {
        body["details"] = details;
    }
    (code, Json(body)).into_response()
}

/// Go leaves empty fields of `StatusDetails` out (`omitempty`).
fn without_empty(mut details: Value) -> Value {
    if let Some(fields) = details.as_object_mut() {
        fields.retain(|_, v| v.as_str() != Some(""));
    }
    details
}
