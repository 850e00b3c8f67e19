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

fn header_matches(req: &HttpRequest<'_>, name: &HeaderName, value: &Pattern) -> bool {
    let mut values = req.headers.get_all(name).iter().peekable();
    if values.peek().is_none() && name == http::header::HOST {
        // HTTP/2 carries the host as :authority (OSM maps `host` the same way).
        return req.authority.is_some_and(|a| value.is_match(a));
    }
    values.any(|v| v.to_str().is_ok_and(|s| value.is_match(s)))
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
