//! HTTP methods as SMI's HTTPRouteGroup enum defines them, and sets of them as a bit mask.

use std::fmt;

/// The methods the SMI HTTPRouteGroup CRD accepts (`*` is [`MethodSet::ANY`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Head,
    Put,
    Post,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
}

impl Method {
    pub const ALL: [Method; 9] = [
        Method::Get,
        Method::Head,
        Method::Put,
        Method::Post,
        Method::Delete,
        Method::Connect,
        Method::Options,
        Method::Trace,
        Method::Patch,
    ];

    /// Exact, case-sensitive: HTTP method names are case-sensitive and the CRD enum is upper case.
    pub fn from_name(name: &str) -> Option<Method> {
        Some(match name {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "PUT" => Method::Put,
            "POST" => Method::Post,
            "DELETE" => Method::Delete,
            "CONNECT" => Method::Connect,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "PATCH" => Method::Patch,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
            Method::Connect => "CONNECT",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of methods; [`MethodSet::ANY`] also admits methods outside the SMI enum.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MethodSet(u16);

impl MethodSet {
    const ANY_BIT: u16 = 1 << 15;
    pub const ANY: MethodSet = MethodSet(Self::ANY_BIT);
    pub const EMPTY: MethodSet = MethodSet(0);

    #[must_use]
    pub fn with(self, method: Method) -> Self {
        MethodSet(self.0 | method.bit())
    }

    #[must_use]
    pub fn with_any(self) -> Self {
        MethodSet(self.0 | Self::ANY_BIT)
    }

    pub fn is_any(self) -> bool {
        self.0 & Self::ANY_BIT != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether a request method (any string, as received) is in the set.
    pub fn admits(self, method: &str) -> bool {
        if self.is_any() {
            return true;
        }
        Method::from_name(method).is_some_and(|m| self.0 & m.bit() != 0)
    }
}

impl fmt::Debug for MethodSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for MethodSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() {
            return f.write_str("*");
        }
        let mut first = true;
        for m in Method::ALL.iter().filter(|m| self.0 & m.bit() != 0) {
            if !first {
                f.write_str(",")?;
            }
            f.write_str(m.as_str())?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_admits_non_standard_methods() {
        assert!(MethodSet::ANY.admits("PROPFIND"));
        assert!(!MethodSet::EMPTY.with(Method::Get).admits("PROPFIND"));
    }

    #[test]
    fn method_names_are_case_sensitive() {
        let get = MethodSet::EMPTY.with(Method::Get);
        assert!(get.admits("GET"));
        assert!(!get.admits("get"));
        assert!(!get.admits("POST"));
        assert_eq!(get.with(Method::Post).to_string(), "GET,POST");
    }
}
