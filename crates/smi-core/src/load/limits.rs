//! Bounds on one policy source, checked before it is parsed: a file that is far too large or too
//! deeply nested gets a diagnostic naming the file and the limit, not a parser's best effort.
//!
//! The nesting check is a cheap pre-scan of the text, not a YAML parser. It counts block levels
//! (indentation, `- ` entries, `key:` entries) and flow brackets (`[`, `{`) outside quoted
//! scalars, comments and block scalars. It is exact for ordinary YAML and JSON; on unusual layouts
//! it may count fewer levels than there are, and the parsers' own recursion limit (128) remains
//! the backstop.

use std::sync::Arc;

use super::{Diagnostic, Format, Severity};
use crate::model::Origin;

/// The largest policy source accepted: 4 MiB. A cluster's whole policy in one file is rarely
/// over a few hundred KiB; the bundled example is under 4 KiB.
pub const MAX_SOURCE_BYTES: usize = 4 * 1024 * 1024;

/// The deepest nesting accepted, block levels and flow brackets together: 64. SMI resources
/// nest about 7 deep (`spec.matches[].headers.<name>`), 9 inside a `List`; 64 leaves room while
/// staying well under the parsers' recursion limit of 128.
pub const MAX_DEPTH: usize = 64;

/// A source over one of the limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Exceeded {
    #[error(
        "{len} bytes, over the limit of {MAX_SOURCE_BYTES} bytes (4 MiB) for one policy file; skipped"
    )]
    Size { len: u64 },
    #[error(
        "line {}: nested {} levels deep, over the limit of {MAX_DEPTH}; file not parsed",
        .0.line,
        .0.depth
    )]
    Depth(Nesting),
}

impl Exceeded {
    /// The error as a diagnostic about `source`: `source: ...`, or `source:doc N: line L: ...`.
    pub fn diagnostic(self, source: &str) -> Diagnostic {
        let (origin, message) = match self {
            Exceeded::Size { .. } => (None, format!("{source}: {self}")),
            Exceeded::Depth(n) => {
                let origin = Origin {
                    source: Arc::from(source),
                    document: n.document,
                };
                (Some(origin), self.to_string())
            }
        };
        Diagnostic {
            severity: Severity::Error,
            origin,
            resource: None,
            field: None,
            message,
        }
    }
}

/// Refuses a text over either limit, the size first (which is cheap).
pub fn check(text: &str, format: Format) -> Result<(), Exceeded> {
    check_len(text.len() as u64)?;
    check_depth(text, format)
}

/// Refuses a source longer than [`MAX_SOURCE_BYTES`]. Callers reading files check the length
/// before reading, so that a huge file is never read into memory.
pub fn check_len(len: u64) -> Result<(), Exceeded> {
    if len > MAX_SOURCE_BYTES as u64 {
        return Err(Exceeded::Size { len });
    }
    Ok(())
}

/// Refuses a text nested deeper than [`MAX_DEPTH`].
pub fn check_depth(text: &str, format: Format) -> Result<(), Exceeded> {
    let deepest = nesting(text, format);
    if deepest.depth > MAX_DEPTH {
        return Err(Exceeded::Depth(deepest));
    }
    Ok(())
}

/// Where a text nests deepest: the depth, and the 1-based document and line that first reach it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Nesting {
    pub depth: usize,
    pub document: usize,
    pub line: usize,
}

/// Measures how deeply `text` nests. A scalar is 0 deep, a collection one more than its deepest
/// item: `{a: [1]}` is 2.
pub fn nesting(text: &str, format: Format) -> Nesting {
    let mut scan = Scan {
        yaml: format == Format::Yaml,
        deepest: Nesting {
            depth: 0,
            document: 1,
            line: 1,
        },
        ..Scan::default()
    };
    for (i, line) in text.split('\n').enumerate() {
        scan.line(i + 1, line.strip_suffix('\r').unwrap_or(line).as_bytes());
    }
    scan.deepest
}

#[derive(Debug, Default)]
struct Scan {
    yaml: bool,
    deepest: Nesting,
    document: usize,
    /// The document has content, so the next `---` starts another one.
    started: bool,
    /// A `...` ended the document.
    ended: bool,
    /// Open block levels: (column, is a sequence). A sequence may sit at its key's column.
    levels: Vec<(usize, bool)>,
    /// Open flow collections.
    flow: usize,
    /// Inside a quoted scalar, which may span lines.
    quote: Option<u8>,
    /// Inside a block scalar (`|`, `>`): lines indented at least this much are its text.
    block_scalar: Option<usize>,
}

impl Scan {
    fn line(&mut self, number: usize, line: &[u8]) {
        let mut start = 0;
        if self.yaml && self.quote.is_none() && self.flow == 0 {
            if is_marker(line, b"---") || is_marker(line, b"...") {
                self.end_document(line[0] == b'-');
                start = 3;
            } else if let Some(min) = self.block_scalar {
                if line.iter().all(|&b| b == b' ') || indent(line) >= min {
                    return;
                }
                self.block_scalar = None;
            }
            let rest = &line[start..];
            let first = rest.iter().position(|&b| b != b' ' && b != b'\t');
            match first.map(|i| rest[i]) {
                None | Some(b'#') => return,
                // A directive (`%YAML 1.2`) belongs to the document that the next `---` starts.
                Some(b'%') if start == 0 && first == Some(0) => return,
                Some(_) => {}
            }
            if self.ended || self.document == 0 {
                self.document += 1;
                self.ended = false;
            }
            self.started = true;
            if start == 0 {
                start = self.block_entries(number, line);
            }
        } else if self.document == 0 {
            self.document = 1;
        }
        self.flow_and_keys(number, line, start);
    }

    /// Records a `---` (which starts a document) or a `...` (which ends one).
    fn end_document(&mut self, starts: bool) {
        if starts {
            if self.started || self.ended || self.document == 0 {
                self.document += 1;
            }
            self.started = true;
            self.ended = false;
        } else {
            self.started = false;
            self.ended = true;
        }
        self.levels.clear();
        self.flow = 0;
        self.quote = None;
        self.block_scalar = None;
    }

    /// Enters the levels of a line's indentation and its `- ` (and `? `, `: `) entries; returns
    /// where the rest of the line starts.
    fn block_entries(&mut self, number: usize, line: &[u8]) -> usize {
        let mut col = indent(line);
        self.levels.retain(|&(c, _)| c <= col);
        while let Some(&b) = line.get(col) {
            let entry = matches!(b, b'-' | b'?' | b':')
                && matches!(line.get(col + 1), None | Some(b' ' | b'\t'));
            if !entry {
                break;
            }
            self.enter(number, col, b == b'-');
            col += 1;
            while matches!(line.get(col), Some(b' ' | b'\t')) {
                col += 1;
            }
        }
        col
    }

    /// Scans a line from `start` for flow brackets, quoted scalars, comments, `key:` entries and
    /// block scalar indicators. Brackets and quotes count only where a node may start: in block
    /// context `a [b` and `it's` are plain scalars.
    fn flow_and_keys(&mut self, number: usize, line: &[u8], start: usize) {
        let mut prev = b' ';
        // A node may start here: at the line's content, and after `: `, `[`, `{` and `,`.
        let mut expect = true;
        let mut keyed = false;
        let mut i = start;
        while i < line.len() {
            let b = line[i];
            if let Some(q) = self.quote {
                if b == b'\\' && q == b'"' {
                    i += 1;
                } else if b == q {
                    if q == b'\'' && line.get(i + 1) == Some(&b'\'') {
                        i += 1;
                    } else {
                        self.quote = None;
                    }
                }
                prev = b;
                i += 1;
                continue;
            }
            let node = expect || !self.yaml;
            expect = false;
            match b {
                b' ' | b'\t' => expect = node,
                b'#' if self.yaml && matches!(prev, b' ' | b'\t') => return,
                b'"' if node => self.quote = Some(b),
                b'\'' if node && self.yaml => self.quote = Some(b),
                b'[' | b'{' if node || self.flow > 0 => {
                    self.flow += 1;
                    self.reached(number, self.levels.len() + self.flow);
                    expect = true;
                }
                b',' if self.flow > 0 => expect = true,
                b']' | b'}' if self.flow > 0 => self.flow -= 1,
                // In flow context `:` is a value indicator even right after a quoted key.
                b':' if self.yaml && self.flow > 0 => expect = true,
                b':' if self.yaml && matches!(line.get(i + 1), None | Some(b' ' | b'\t')) => {
                    if !keyed {
                        keyed = true;
                        self.enter(number, start, false);
                    }
                    expect = true;
                }
                // A tag or an anchor comes before its node.
                b'!' | b'&' if node && self.yaml => {
                    while i + 1 < line.len() && !matches!(line[i + 1], b' ' | b'\t') {
                        i += 1;
                    }
                    expect = true;
                }
                b'|' | b'>'
                    if node
                        && self.yaml
                        && self.flow == 0
                        && is_block_scalar_header(&line[i..]) =>
                {
                    // Its text is indented more than the node that holds it.
                    self.block_scalar = Some(self.levels.last().map_or(0, |&(c, _)| c + 1));
                    return;
                }
                _ => {}
            }
            prev = line[i];
            i += 1;
        }
    }

    /// Enters a block level at `col`: leaves deeper ones, and stays at an equal one.
    fn enter(&mut self, number: usize, col: usize, seq: bool) {
        while let Some(&(c, s)) = self.levels.last() {
            if c > col || (c == col && s && !seq) {
                self.levels.pop();
            } else {
                break;
            }
        }
        if self.levels.last() != Some(&(col, seq)) {
            self.levels.push((col, seq));
        }
        self.reached(number, self.levels.len() + self.flow);
    }

    fn reached(&mut self, line: usize, depth: usize) {
        if depth > self.deepest.depth {
            self.deepest = Nesting {
                depth,
                document: self.document.max(1),
                line,
            };
        }
    }
}

fn indent(line: &[u8]) -> usize {
    line.iter().take_while(|&&b| b == b' ').count()
}

fn is_marker(line: &[u8], marker: &[u8]) -> bool {
    line.starts_with(marker) && matches!(line.get(3), None | Some(b' ' | b'\t'))
}

/// `|` or `>`, with optional chomping and indentation indicators (`|-`, `>+2`), then at most a
/// comment.
fn is_block_scalar_header(rest: &[u8]) -> bool {
    let indicators = rest[1..]
        .iter()
        .take_while(|b| matches!(b, b'-' | b'+' | b'1'..=b'9'))
        .count();
    let after = &rest[1 + indicators..];
    let comment = after.trim_ascii_start();
    comment.is_empty() || (comment[0] == b'#' && comment.len() < after.len())
}

#[cfg(test)]
mod tests;
