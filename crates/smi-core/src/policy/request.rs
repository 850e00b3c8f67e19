//! What a decision is asked about: a request as the data plane (or `smictl`) sees it.

use http::HeaderMap;

/// One request, or one connection for TCP/UDP.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// Destination port; `None` means port restrictions do not apply (offline questions).
    pub port: Option<u16>,
    pub protocol: Protocol<'a>,
}

#[derive(Clone, Copy, Debug)]
pub enum Protocol<'a> {
    Http(HttpRequest<'a>),
    Tcp,
    Udp,
}

/// The parts of an HTTP request that SMI matches on.
#[derive(Clone, Copy, Debug)]
pub struct HttpRequest<'a> {
    pub method: &'a str,
    /// The request target's path, normalized ([`super::normalize_path`]); a query string, if
    /// present, is ignored.
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    /// The request's authority (absolute-form URI, else `:authority`, else `Host`): what a
    /// `host` header match is tested on. `None` falls back to the `host` header itself.
    pub authority: Option<&'a str>,
}

impl<'a> HttpRequest<'a> {
    pub fn new(method: &'a str, path: &'a str, headers: &'a HeaderMap) -> Self {
        Self {
            method,
            path,
            headers,
            authority: None,
        }
    }

    /// The path without its query string.
    pub(crate) fn path_only(&self) -> &'a str {
        match self.path.find('?') {
            Some(i) => &self.path[..i],
            None => self.path,
        }
    }
}

impl<'a> Request<'a> {
    pub fn http(port: Option<u16>, http: HttpRequest<'a>) -> Self {
        Self {
            port,
            protocol: Protocol::Http(http),
        }
    }

    pub fn tcp(port: Option<u16>) -> Self {
        Self {
            port,
            protocol: Protocol::Tcp,
        }
    }

    pub fn udp(port: Option<u16>) -> Self {
        Self {
            port,
            protocol: Protocol::Udp,
        }
    }
}
