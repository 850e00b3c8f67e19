//! Compiled string tests for paths and header values.
//!
//! Most SMI patterns are plain literals (`/metrics`, `/api`, `/books$`): those compile to a
//! `starts_with` or `==` instead of a regex, which is faster and takes no memory per thread.
//! Other patterns are built once per distinct anchored form and shared behind an `Arc`.

use std::collections::HashMap;
use std::sync::Arc;

use regex::Regex;
use regex_syntax::hir::{Hir, HirKind, Look};

#[derive(Clone, Debug)]
pub(crate) enum Pattern {
    Any,
    Prefix(Box<str>),
    Exact(Box<str>),
    Regex(Arc<Regex>),
    /// A pattern that validated but could not be built (regex size limits): fails closed.
    Never,
}

impl Pattern {
    #[inline]
    pub fn is_match(&self, text: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Prefix(p) => text.starts_with(&**p),
            Pattern::Exact(p) => text == &**p,
            Pattern::Regex(re) => re.is_match(text),
            Pattern::Never => false,
        }
    }
}

/// Builds patterns for one compilation, sharing identical ones.
#[derive(Debug, Default)]
pub(crate) struct PatternCache {
    built: HashMap<(String, bool), Pattern>,
    /// Patterns that failed to build; the compiler reports them.
    pub failed: Vec<String>,
}

impl PatternCache {
    /// `full`: the whole text must match (`^(?:re)$`); otherwise a prefix (`^(?:re)`).
    pub fn pattern(&mut self, source: Option<&str>, full: bool) -> Pattern {
        let Some(source) = source.filter(|s| !s.is_empty() && *s != ".*") else {
            return Pattern::Any;
        };
        if let Some(p) = self.built.get(&(source.to_owned(), full)) {
            return p.clone();
        }
        let pattern = literal(source, full).unwrap_or_else(|| {
            let anchored = if full {
                format!("^(?:{source})$")
            } else {
                format!("^(?:{source})")
            };
            match Regex::new(&anchored) {
                Ok(re) => Pattern::Regex(Arc::new(re)),
                Err(_) => {
                    self.failed.push(source.to_owned());
                    Pattern::Never
                }
            }
        });
        self.built
            .insert((source.to_owned(), full), pattern.clone());
        pattern
    }
}

/// A pattern that is a literal, optionally followed by `$`, needs no regex.
fn literal(source: &str, full: bool) -> Option<Pattern> {
    let hir = regex_syntax::Parser::new().parse(source).ok()?;
    let text = |h: &Hir| match h.kind() {
        HirKind::Literal(lit) => std::str::from_utf8(&lit.0).ok().map(Box::<str>::from),
        _ => None,
    };
    let is_end = |h: &Hir| matches!(h.kind(), HirKind::Look(Look::End));
    let is_start = |h: &Hir| matches!(h.kind(), HirKind::Look(Look::Start));
    let parts: &[Hir] = match hir.kind() {
        HirKind::Concat(parts) => parts,
        _ => std::slice::from_ref(&hir),
    };
    let parts = match parts.split_first() {
        Some((first, rest)) if is_start(first) => rest,
        _ => parts,
    };
    match parts {
        [lit] => text(lit).map(|t| {
            if full {
                Pattern::Exact(t)
            } else {
                Pattern::Prefix(t)
            }
        }),
        [lit, end] if is_end(end) => text(lit).map(Pattern::Exact),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(source: &str, full: bool) -> &'static str {
        match PatternCache::default().pattern(Some(source), full) {
            Pattern::Any => "any",
            Pattern::Prefix(_) => "prefix",
            Pattern::Exact(_) => "exact",
            Pattern::Regex(_) => "regex",
            Pattern::Never => "never",
        }
    }

    #[test]
    fn literals_need_no_regex() {
        assert_eq!(kind("/metrics", false), "prefix");
        assert_eq!(kind("/metrics", true), "exact");
        assert_eq!(kind("/books$", false), "exact");
        assert_eq!(kind("^/books", false), "prefix");
        assert_eq!(kind(r"/a\.b", false), "prefix");
        assert_eq!(kind(".*", false), "any");
        assert_eq!(kind("/api/.*", false), "regex");
        assert_eq!(kind("/a|/b", false), "regex");
        assert_eq!(kind("(?i)/api", false), "regex");
    }

    #[test]
    fn literal_forms_match_like_their_regex() {
        for (source, full) in [
            ("/metrics", false),
            ("/metrics", true),
            ("/books$", false),
            (r"/a\.b", false),
        ] {
            let fast = PatternCache::default().pattern(Some(source), full);
            let anchored = if full {
                format!("^(?:{source})$")
            } else {
                format!("^(?:{source})")
            };
            let re = Regex::new(&anchored).unwrap();
            for text in [
                "/metrics",
                "/metrics/x",
                "/books",
                "/books/",
                "/a.b",
                "/axb",
                "",
                "/",
            ] {
                assert_eq!(
                    fast.is_match(text),
                    re.is_match(text),
                    "{source} full={full} on {text:?}"
                );
            }
        }
    }
}
