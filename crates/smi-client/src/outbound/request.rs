//! What the outbound stack reads from and writes into a request: the authority it addresses,
//! and the URI form each HTTP version needs.

use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Uri};

/// The authority the caller addressed: the URI's, or the `Host` header's.
pub(crate) fn authority_of<B>(request: &Request<B>) -> Option<Authority> {
    if let Some(authority) = request.uri().authority() {
        return Some(authority.clone());
    }
    request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse().ok())
}

/// HTTP/2 requests carry scheme and authority in the URI; HTTP/1.1 requests an origin-form URI
/// and a `Host` header.
pub(crate) fn prepare<B>(request: &mut Request<B>, authority: &Authority, h2: bool) {
    let path = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    let mut parts = http::uri::Parts::default();
    parts.path_and_query = Some(path);
    if h2 {
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(authority.clone());
    } else if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
        request.headers_mut().insert(http::header::HOST, host);
    }
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
}
