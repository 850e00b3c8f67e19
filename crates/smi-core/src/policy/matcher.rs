//! Compiled HTTPRouteGroup matches.

use http::HeaderName;

use super::PathMatch;
use super::pattern::{Pattern, PatternCache};
use super::request::HttpRequest;
use crate::model::{HttpMatch, HttpRouteGroup, MethodSet};

#[derive(Clone, Debug)]
pub(crate) struct CompiledMatch {
    pub name: Box<str>,
    path: Pattern,
    methods: MethodSet,
    headers: Box<[(HeaderName, Pattern)]>,
}

impl CompiledMatch {
    pub fn compile(m: &HttpMatch, path_match: PathMatch, cache: &mut PatternCache) -> Self {
        let headers = m
            .headers
            .iter()
            .filter_map(|(name, value)| {
                // Names were validated by the loader; one that is not is dropped with the match
                // failing closed below.
                let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
                Some((name, cache.pattern(Some(value), true)))
            })
            .collect::<Box<[_]>>();
        let path = if headers.len() == m.headers.len() {
            cache.pattern(m.path_regex.as_deref(), path_match == PathMatch::Full)
        } else {
            Pattern::Never
        };
        Self {
            name: m.name.as_str().into(),
            path,
            methods: m.methods,
            headers,
        }
    }

    pub fn header_names(&self) -> impl Iterator<Item = &HeaderName> {
        self.headers.iter().map(|(name, _)| name)
    }

    /// Path, method and every header must match (AND).
    pub fn matches(&self, req: &HttpRequest<'_>) -> bool {
        self.methods.admits(req.method)
            && self.path.is_match(req.path_only())
            && self
                .headers
                .iter()
                .all(|(name, value)| header_matches(req, name, value))
    }
}

/// A header that arrives more than once is matched as one comma-joined value (as Envoy does), so
/// that no copy goes unchecked; the data plane hands the application that same joined value.
/// `host` is the request's authority, which the data plane resolved and checked.
fn header_matches(req: &HttpRequest<'_>, name: &HeaderName, value: &Pattern) -> bool {
    if name == http::header::HOST
        && let Some(authority) = req.authority
    {
        return value.is_match(authority);
    }
    let mut values = req.headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => false,
        (Some(one), None) => one.to_str().is_ok_and(|s| value.is_match(s)),
        (Some(_), Some(_)) => joined_value(req.headers, name).is_some_and(|s| value.is_match(&s)),
    }
}

/// The values of a repeated header as one (`None` when one is not text): joined with `,`, or
/// for `cookie` with `; ` (HTTP/2 clients split cookies into several fields, RFC 9113 8.2.3).
pub fn joined_value(headers: &http::HeaderMap, name: &HeaderName) -> Option<String> {
    let separator = if name == http::header::COOKIE {
        "; "
    } else {
        ","
    };
    let mut joined = String::new();
    for (i, v) in headers.get_all(name).iter().enumerate() {
        if i > 0 {
            joined.push_str(separator);
        }
        joined.push_str(v.to_str().ok()?);
    }
    Some(joined)
}

/// A compiled HTTPRouteGroup.
#[derive(Debug)]
pub(crate) struct CompiledGroup {
    pub matches: Box<[CompiledMatch]>,
}

impl CompiledGroup {
    pub fn compile(
        group: &HttpRouteGroup,
        path_match: PathMatch,
        cache: &mut PatternCache,
    ) -> Self {
        Self {
            matches: group
                .matches
                .iter()
                .map(|m| CompiledMatch::compile(m, path_match, cache))
                .collect(),
        }
    }

    /// The first match (in `selected`, or all when `None`) that the request satisfies, with
    /// its index in the group.
    pub fn first_match<'a>(
        &'a self,
        selected: Option<&[u32]>,
        req: &HttpRequest<'_>,
    ) -> Option<(usize, &'a CompiledMatch)> {
        match selected {
            None => self
                .matches
                .iter()
                .enumerate()
                .find(|(_, m)| m.matches(req)),
            Some(indices) => indices
                .iter()
                .filter_map(|&i| Some((i as usize, self.matches.get(i as usize)?)))
                .find(|(_, m)| m.matches(req)),
        }
    }
}

#[cfg(test)]
mod tests;
