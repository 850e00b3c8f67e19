//! [`StringValue`]: a label value that moves through the request path without copying its text:
//! a `&'static str`, or a shared `Arc<str>` made once (per connection, per policy version).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// A label value. Cloning it copies a pointer (and bumps a reference count for shared text),
/// never the text. Equality, ordering and hashing are by content, so the same name from two
/// policy versions is one series.
#[derive(Clone)]
pub struct StringValue(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared(Arc<str>),
}

impl StringValue {
    pub const EMPTY: StringValue = StringValue(Repr::Static(""));

    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Shared(s) => s,
        }
    }

    /// Where the text is and how long: equal for clones, and for nothing else while both live.
    pub(crate) fn identity(&self) -> (usize, usize) {
        let text = self.as_str();
        (text.as_ptr() as usize, text.len())
    }

    /// Whether both point at the same text (a cheap check before comparing contents).
    pub(crate) fn same_text(&self, other: &StringValue) -> bool {
        match (&self.0, &other.0) {
            (Repr::Shared(a), Repr::Shared(b)) => Arc::ptr_eq(a, b),
            (Repr::Static(a), Repr::Static(b)) => std::ptr::eq(*a, *b),
            _ => false,
        }
    }
}

impl Default for StringValue {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl Deref for StringValue {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for StringValue {
    fn eq(&self, other: &Self) -> bool {
        self.same_text(other) || self.as_str() == other.as_str()
    }
}

impl Eq for StringValue {}

impl PartialOrd for StringValue {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for StringValue {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for StringValue {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for StringValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for StringValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&'static str> for StringValue {
    fn from(s: &'static str) -> Self {
        StringValue(Repr::Static(s))
    }
}

impl From<Arc<str>> for StringValue {
    fn from(s: Arc<str>) -> Self {
        StringValue(Repr::Shared(s))
    }
}

impl From<&Arc<str>> for StringValue {
    fn from(s: &Arc<str>) -> Self {
        StringValue(Repr::Shared(s.clone()))
    }
}

/// Copies the text once (for values made on a slow path, e.g. an error's service name).
impl From<String> for StringValue {
    fn from(s: String) -> Self {
        StringValue(Repr::Shared(s.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_compare_and_hash_by_content() {
        use std::hash::BuildHasher;
        let a: StringValue = Arc::<str>::from("bookstore/bookstore").into();
        let b: StringValue = String::from("bookstore/bookstore").into();
        let c: StringValue = "bookstore/bookstore".into();
        assert_eq!(a, b);
        assert_eq!(b, c);
        let hasher = std::hash::RandomState::new();
        assert_eq!(hasher.hash_one(&a), hasher.hash_one(&c));
        assert_ne!(a, StringValue::from("other"));
        assert_eq!(StringValue::default().as_str(), "");
    }
}
