//! Failed requests, answered as `Status` objects (`kind: Status, apiVersion: v1, status:
//! Failure`), with the reasons, codes and messages the real server uses: kube-rs parses them into
//! `kube::Error::Api`, and callers match on `code` and `reason`.

use http::StatusCode;
use serde_json::{Value, json};

/// A request the server refuses, and why.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct ApiError {
    pub code: StatusCode,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

/// The resource an error is about, as the real server names it in messages: `pods`, or
/// `foos.example.com` for a resource of a named group.
#[derive(Clone, Copy, Debug)]
pub(super) struct Resource<'a> {
    pub group: &'a str,
    pub plural: &'a str,
}

impl std::fmt::Display for Resource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            f.write_str(self.plural)
        } else {
            write!(f, "{}.{}", self.plural, self.group)
        }
    }
}

// === impl ApiError ===

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn about(mut self, resource: Resource<'_>, name: &str) -> ApiError {
        self.details = Some(json!({
            "name": name,
            "group": resource.group,
            "kind": resource.plural,
        }));
        self
    }

    pub fn not_found(resource: Resource<'_>, name: &str) -> ApiError {
        let message = format!("{resource} \"{name}\" not found");
        Self::new(StatusCode::NOT_FOUND, "NotFound", message).about(resource, name)
    }

    /// A path that names no resource this server serves.
    pub fn no_such_path() -> ApiError {
        let message = "the server could not find the requested resource";
        let mut e = Self::new(StatusCode::NOT_FOUND, "NotFound", message);
        e.details = Some(json!({}));
        e
    }

    pub fn already_exists(resource: Resource<'_>, name: &str) -> ApiError {
        let message = format!("{resource} \"{name}\" already exists");
        Self::new(StatusCode::CONFLICT, "AlreadyExists", message).about(resource, name)
    }

    /// A write whose `resourceVersion` (or delete precondition) is not the stored one.
    pub fn conflict(resource: Resource<'_>, name: &str, why: &str) -> ApiError {
        let message = format!("Operation cannot be fulfilled on {resource} \"{name}\": {why}");
        Self::new(StatusCode::CONFLICT, "Conflict", message).about(resource, name)
    }

    /// The message of a conflict on a stale `resourceVersion`.
    pub const MODIFIED: &'static str = "the object has been modified; please apply your changes to the latest version and try again";

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// An object that fails validation (422), e.g. a CustomResourceDefinition without a storage
    /// version.
    pub fn invalid(kind: &str, group: &str, name: &str, why: &str) -> ApiError {
        let qualified = if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        };
        let message = format!("{qualified} \"{name}\" is invalid: {why}");
        let mut e = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message);
        e.details = Some(json!({"name": name, "group": group, "kind": kind}));
        e
    }

    /// A JSON patch that does not apply (a failed `test`, a missing path).
    pub fn invalid_patch(why: &str) -> ApiError {
        let message = format!("the JSON patch could not be applied: {why}");
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message)
    }

    /// A resourceVersion or continue token older than the compaction point (410).
    pub fn expired(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::GONE, "Expired", message)
    }

    /// A resourceVersion newer than the server has (the real one waits a little, then says this).
    pub fn too_large_resource_version(asked: u64, current: u64) -> ApiError {
        let message = format!("Too large resource version: {asked}, current: {current}");
        let mut e = Self::new(StatusCode::GATEWAY_TIMEOUT, "Timeout", message);
        e.details = Some(
            json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
        );
        e
    }

    pub fn method_not_allowed() -> ApiError {
        let message = "the server does not allow this method on the requested resource";
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> ApiError {
        let message = format!(
            "the body of the request was in an unknown format ({content_type}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
        );
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            message,
        )
    }

    pub fn unauthorized() -> ApiError {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    pub fn unavailable() -> ApiError {
        let message = "the server is currently unable to handle the request";
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            message,
        )
    }

    /// The `Status` object of this error.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resources_as_the_real_server_does() {
        let pods = Resource {
            group: "",
            plural: "pods",
        };
        let foos = Resource {
            group: "example.com",
            plural: "foos",
        };
        assert_eq!(
            ApiError::not_found(pods, "web").message,
            "pods \"web\" not found"
        );
        let status = ApiError::already_exists(foos, "a").status();
        assert_eq!(status["message"], "foos.example.com \"a\" already exists");
        assert_eq!(status["code"], 409);
        assert_eq!(status["reason"], "AlreadyExists");
        assert_eq!(status["details"]["kind"], "foos");
    }
}
