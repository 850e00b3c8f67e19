//! Making a request unambiguous before it is authorized, and handing the application exactly what
//! was authorized: the normalized path (see [`smi_core::policy::normalize_path`]), one authority,
//! and one value for each header that policy matches on.

use http::Request;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use smi_core::policy::{PathError, joined_value, normalize_path};

/// Why a request is refused before authorization (400).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Invalid {
    Path(PathError),
    /// More than one `Host` header.
    SeveralHosts,
    /// A `Host` header that is not the request's authority (absolute-form URI or `:authority`).
    HostMismatch,
    /// A repeated header that policy matches on has a value that is not text.
    HeaderNotText,
    /// The normalized path does not make a URI again (it always should).
    Unrebuildable,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invalid::Path(e) => write!(f, "request path: {e}"),
            Invalid::SeveralHosts => f.write_str("more than one Host header"),
            Invalid::HostMismatch => f.write_str("the Host header differs from the authority"),
            Invalid::HeaderNotText => f.write_str("a repeated header is not text"),
            Invalid::Unrebuildable => f.write_str("the normalized path is not a valid URI"),
        }
    }
}

/// Rewrites `request` into its canonical form. `matched` are the header names policy tests
/// ([`smi_core::Snapshot::matched_headers`]); a repeated one becomes one comma-joined value.
/// Allocates only when something had to change.
pub(crate) fn canonicalize<B>(
    request: &mut Request<B>,
    matched: &[HeaderName],
) -> Result<(), Invalid> {
    check_host(request)?;
    if let Some(normalized) = normalized_uri(request.uri())? {
        *request.uri_mut() = normalized;
    }
    for name in matched {
        let mut values = request.headers().get_all(name).iter();
        if values.next().is_some() && values.next().is_some() {
            let joined = joined_value(request.headers(), name)
                .and_then(|v| HeaderValue::try_from(v).ok())
                .ok_or(Invalid::HeaderNotText)?;
            request.headers_mut().insert(name.clone(), joined);
        }
    }
    Ok(())
}

/// The authority a `host` match is tested on: the URI's (absolute form, HTTP/2 `:authority`),
/// else the `Host` header. Call after [`canonicalize`], which made the two agree.
pub(crate) fn authority<B>(request: &Request<B>) -> Option<&str> {
    request.uri().authority().map(|a| a.as_str()).or_else(|| {
        request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
    })
}

fn check_host<B>(request: &Request<B>) -> Result<(), Invalid> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (None, _) => return Ok(()),
        (Some(_), Some(_)) => return Err(Invalid::SeveralHosts),
        (Some(host), None) => host,
    };
    match request.uri().authority() {
        Some(authority)
            if !host
                .as_bytes()
                .eq_ignore_ascii_case(authority.as_str().as_bytes()) =>
        {
            Err(Invalid::HostMismatch)
        }
        _ => Ok(()),
    }
}

/// `None` when the URI's path is already canonical, or when it has none (CONNECT's
/// authority-form target).
fn normalized_uri(uri: &Uri) -> Result<Option<Uri>, Invalid> {
    if uri.path_and_query().is_none() {
        return Ok(None);
    }
    let path = uri.path();
    let normalized = normalize_path(path).map_err(Invalid::Path)?;
    if normalized == path {
        return Ok(None);
    }
    let path_and_query = match uri.query() {
        Some(query) => format!("{normalized}?{query}"),
        None => normalized.into_owned(),
    };
    let mut parts = uri.clone().into_parts();
    // A normalized path has only characters its input had (and decoded unreserved ones).
    parts.path_and_query =
        Some(PathAndQuery::try_from(path_and_query).map_err(|_| Invalid::Unrebuildable)?);
    Uri::from_parts(parts)
        .map(Some)
        .map_err(|_| Invalid::Unrebuildable)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn request(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::get(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn the_application_gets_the_normalized_path_and_the_query_untouched() {
        let mut r = request("/buy-a-book/new/../../admin/delete-all?x=/../y", &[]);
        canonicalize(&mut r, &[]).unwrap();
        assert_eq!(r.uri().path(), "/admin/delete-all");
        assert_eq!(r.uri().query(), Some("x=/../y"));
        let mut r = request("http://bookstore.default/a//%62?q", &[]);
        canonicalize(&mut r, &[]).unwrap();
        assert_eq!(r.uri().to_string(), "http://bookstore.default/a/b?q");
    }

    #[test]
    fn a_connect_target_has_no_path_to_normalize() {
        let mut r = Request::connect("bookstore-v1.bookstore:443")
            .body(())
            .unwrap();
        assert_eq!(canonicalize(&mut r, &[]), Ok(()));
        assert_eq!(r.uri().to_string(), "bookstore-v1.bookstore:443");
    }

    #[test]
    fn encoded_separators_are_refused() {
        let mut r = request("/buy-a-book/new%2F..%2F..%2Fadmin", &[]);
        assert_eq!(
            canonicalize(&mut r, &[]),
            Err(Invalid::Path(PathError::EncodedSeparator))
        );
    }

    #[test]
    fn host_must_be_single_and_agree_with_the_authority() {
        let mut r = request("/", &[("host", "a.default"), ("host", "b.default")]);
        assert_eq!(canonicalize(&mut r, &[]), Err(Invalid::SeveralHosts));
        let mut r = request("http://a.default/", &[("host", "b.default")]);
        assert_eq!(canonicalize(&mut r, &[]), Err(Invalid::HostMismatch));
        let mut r = request("http://a.default/", &[("host", "A.default")]);
        assert_eq!(canonicalize(&mut r, &[]), Ok(()));
        assert_eq!(authority(&r), Some("a.default"));
        let mut r = request("/", &[("host", "b.default")]);
        assert_eq!(canonicalize(&mut r, &[]), Ok(()));
        assert_eq!(authority(&r), Some("b.default"));
    }

    #[test]
    fn a_repeated_matched_header_reaches_the_application_as_the_value_checked() {
        let role = HeaderName::from_static("x-role");
        let mut r = request(
            "/",
            &[
                ("x-role", "reader"),
                ("x-role", "admin"),
                ("x-other", "1"),
                ("x-other", "2"),
            ],
        );
        canonicalize(&mut r, std::slice::from_ref(&role)).unwrap();
        let roles: Vec<_> = r.headers().get_all(&role).iter().collect();
        assert_eq!(roles, vec!["reader,admin"]);
        // Headers that no rule tests are the application's business.
        assert_eq!(r.headers().get_all("x-other").iter().count(), 2);
    }
}
