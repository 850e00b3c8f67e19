//! Request paths as they are authorized: one canonical form, so that a path that policy denies
//! cannot be spelled in a way that a prefix or regex admits while the application reads it as the
//! denied one (the class of Istio's CVE-2021-31920; Envoy's `normalize_path` + `merge_slashes`).
//!
//! The steps, in order:
//! 1. percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`, RFC 3986 2.3) are decoded,
//!    other escapes keep their encoding (hex digits upper-cased); an encoded `/` or `\` is
//!    refused, since servers disagree on whether it separates segments, and so is a raw `\`;
//! 2. repeated slashes are merged (`//` is one separator, as most servers route it);
//! 3. dot segments are removed (RFC 3986 5.2.4; `..` above the root stays at the root).
//!
//! The data plane hands the application the normalized path, so what was authorized is what is
//! served. The query string is not part of the path and is left as it is.

use std::borrow::Cow;
use std::fmt;

/// Why a path cannot be authorized (the data plane answers 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    /// `%2F` or `%5C`: a separator in disguise.
    EncodedSeparator,
    /// A raw `\`, which some servers treat as `/`.
    Backslash,
    /// `%` not followed by two hex digits.
    BadEscape,
    /// Not an origin-form path (it must start with `/`; `*` is accepted as itself).
    NotAbsolute,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::EncodedSeparator => "an encoded '/' or '\\' (%2F, %5C) is refused",
            PathError::Backslash => "a '\\' in the path is refused",
            PathError::BadEscape => "a '%' not followed by two hex digits",
            PathError::NotAbsolute => "the path must start with '/'",
        })
    }
}

impl std::error::Error for PathError {}

/// The canonical form of `path` (without its query string). Borrowed when `path` is already
/// canonical, which is the common case and costs one scan.
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, PathError> {
    if path == "*" {
        return Ok(Cow::Borrowed(path));
    }
    if path.is_empty() {
        return Ok(Cow::Borrowed("/"));
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_canonical(path.as_bytes())? {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(path)?;
    Ok(Cow::Owned(remove_dot_segments(&decoded)))
}

/// `Ok(true)` when no step would change `path`; refuses a raw backslash on the way.
fn is_canonical(bytes: &[u8]) -> Result<bool, PathError> {
    let mut canonical = true;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\\' => return Err(PathError::Backslash),
            b'%' if !is_kept_escape(&bytes[i + 1..]) => canonical = false,
            b'/' if i > 0 && bytes[i - 1] == b'/' => canonical = false,
            b'.' if i > 0 && bytes[i - 1] == b'/' && is_dot_segment(&bytes[i..]) => {
                canonical = false
            }
            _ => {}
        }
    }
    Ok(canonical)
}

/// An escape that decoding leaves as it is: two upper-case hex digits of a byte that is neither
/// unreserved nor a separator.
fn is_kept_escape(rest: &[u8]) -> bool {
    let upper = |b: u8| b.is_ascii_digit() || (b'A'..=b'F').contains(&b);
    match rest {
        [hi, lo, ..] if upper(*hi) && upper(*lo) => {
            let value = (hex_value(*hi) << 4) | hex_value(*lo);
            !is_unreserved(value) && value != b'/' && value != b'\\'
        }
        _ => false,
    }
}

/// `rest` starts a segment: is that segment `.` or `..`?
fn is_dot_segment(rest: &[u8]) -> bool {
    matches!(
        rest,
        [b'.'] | [b'.', b'/', ..] | [b'.', b'.'] | [b'.', b'.', b'/', ..]
    )
}

fn decode_unreserved(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\\' => return Err(PathError::Backslash),
            b'%' => {
                let (hi, lo) = match (bytes.get(i + 1), bytes.get(i + 2)) {
                    (Some(&hi), Some(&lo)) => (hex(hi)?, hex(lo)?),
                    _ => return Err(PathError::BadEscape),
                };
                let value = (hi << 4) | lo;
                match value {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    v if is_unreserved(v) => out.push(char::from(v)),
                    v => {
                        out.push('%');
                        out.push(char::from(HEX[usize::from(v >> 4)]));
                        out.push(char::from(HEX[usize::from(v & 0xf)]));
                    }
                }
                i += 3;
            }
            _ => {
                // Copy the run up to the next escape or backslash whole (keeps UTF-8 intact).
                let end = bytes[i..]
                    .iter()
                    .position(|&c| c == b'%' || c == b'\\')
                    .map_or(bytes.len(), |n| i + n);
                out.push_str(&path[i..end]);
                i = end;
            }
        }
    }
    Ok(out)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex(b: u8) -> Result<u8, PathError> {
    if b.is_ascii_hexdigit() {
        Ok(hex_value(b))
    } else {
        Err(PathError::BadEscape)
    }
}

/// The value of a hex digit (callers checked that it is one).
fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b.wrapping_sub(b'A').wrapping_add(10) & 0xf,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Merges empty segments and resolves `.` and `..`; `path` starts with `/`.
fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    // A path that ends in a separator or a dot segment names a directory: keep the final `/`.
    let mut trailing_slash = false;
    for segment in path[1..].split('/') {
        trailing_slash = matches!(segment, "" | "." | "..");
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || segments.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(path: &str) -> Result<String, PathError> {
        normalize_path(path).map(Cow::into_owned)
    }

    #[test]
    fn canonical_paths_are_borrowed() {
        for path in [
            "/",
            "/buy-a-book/new",
            "/a/b/",
            "/a.b/c..d/.e",
            "/a%20b%2Cc",
        ] {
            if let Ok(Cow::Owned(_)) = normalize_path(path) {
                panic!("{path} should need no copy");
            }
        }
        assert!(matches!(normalize_path("/a/b"), Ok(Cow::Borrowed("/a/b"))));
    }

    #[test]
    fn dot_segments_are_removed() {
        let cases = [
            (
                "/buy-a-book/new/../../admin/delete-all",
                "/admin/delete-all",
            ),
            ("/a/./b", "/a/b"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/..", "/"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/a/b/../../../c", "/c"),
            ("/a/..b/c", "/a/..b/c"),
        ];
        for (input, want) in cases {
            assert_eq!(norm(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn repeated_slashes_are_merged_before_dots_resolve() {
        assert_eq!(norm("//admin").as_deref(), Ok("/admin"));
        assert_eq!(norm("/a//b///c").as_deref(), Ok("/a/b/c"));
        assert_eq!(norm("/a//../b").as_deref(), Ok("/b"));
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_others_kept() {
        assert_eq!(norm("/%61dmin").as_deref(), Ok("/admin"));
        assert_eq!(norm("/a/%2e%2E/admin").as_deref(), Ok("/admin"));
        assert_eq!(norm("/a%20b").as_deref(), Ok("/a%20b"));
        assert_eq!(norm("/a%3fb").as_deref(), Ok("/a%3Fb"));
        // Decoded once only: %25 is '%', which stays encoded.
        assert_eq!(norm("/%252F").as_deref(), Ok("/%252F"));
        assert_eq!(norm("/caf\u{e9}/%7E").as_deref(), Ok("/caf\u{e9}/~"));
    }

    #[test]
    fn disguised_separators_are_refused() {
        for path in [
            "/buy-a-book/new%2F..%2F..%2Fadmin",
            "/a%2fb",
            "/a%5Cb",
            "/a%5c..%5cadmin",
        ] {
            assert_eq!(norm(path), Err(PathError::EncodedSeparator), "{path}");
        }
        assert_eq!(norm("/a\\..\\admin"), Err(PathError::Backslash));
        assert_eq!(norm("/a%2"), Err(PathError::BadEscape));
        assert_eq!(norm("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(norm("admin"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        for path in ["/a/../b//c/./", "/%7e/x/..", "/a%20/%41/../b"] {
            let once = norm(path).unwrap();
            assert!(
                matches!(normalize_path(&once), Ok(Cow::Borrowed(p)) if p == once),
                "{path} -> {once}"
            );
        }
    }
}
