//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>), as data: the `traceparent`
//! header parsed and formatted (version `00`; later versions read by the spec's forward
//! compatibility rules and written back as `00`), and the `tracestate` header checked and
//! carried as an opaque value, bounded. No I/O: the workload crates read the headers, generate
//! ids, and decide what to propagate.
//!
//! Only the `sampled` flag is kept from `trace-flags`: the spec says the other bits are
//! reserved and must be sent as zero, so a parsed [`TraceFlags`] never carries them.

use std::fmt;

/// The header names, lowercase as the spec asks senders to write them.
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// The length of a version-`00` `traceparent` value: `00-<32 hex>-<16 hex>-<2 hex>`.
pub const TRACEPARENT_LEN: usize = 55;

/// The longest `tracestate` (the combined value, commas and optional whitespace included) that
/// is carried: the 512 characters the spec asks every vendor to propagate. A longer one is
/// dropped whole rather than truncated (truncating means choosing whose entries to lose).
pub const TRACESTATE_MAX_LEN: usize = 512;

/// The most list members a `tracestate` may have (the spec's limit).
pub const TRACESTATE_MAX_MEMBERS: usize = 32;

/// The 16-byte id of a whole trace. All zeroes is invalid and never parsed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId([u8; 16]);

/// The 8-byte id of one span (the `parent-id` of the header). All zeroes is invalid.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId([u8; 8]);

/// The `trace-flags` this version knows: `sampled` only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TraceFlags(u8);

/// A parsed `traceparent`: the trace, the caller's span, and whether the caller records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceParent {
    pub trace_id: TraceId,
    /// The span of the caller that sent the request (the new span's parent).
    pub parent_id: SpanId,
    pub flags: TraceFlags,
}

/// Why a `traceparent` was not accepted (the request then starts a new trace).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TraceParentError {
    #[error("the version is not two lowercase hex digits followed by a dash")]
    Version,
    #[error("version ff is forbidden")]
    ForbiddenVersion,
    #[error("a version-00 value must be exactly {TRACEPARENT_LEN} characters")]
    Length,
    #[error("the fields are not separated by dashes where version 00 puts them")]
    Delimiter,
    #[error("the {0} is not lowercase hex")]
    Field(&'static str),
    #[error("the trace-id is all zeroes")]
    ZeroTraceId,
    #[error("the parent-id is all zeroes")]
    ZeroParentId,
}

/// A checked `tracestate` value, borrowed from the header it was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceState<'a> {
    value: &'a str,
    members: usize,
}

/// Why a `tracestate` was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TraceStateError {
    #[error("longer than {TRACESTATE_MAX_LEN} characters")]
    TooLong,
    #[error("more than {TRACESTATE_MAX_MEMBERS} list members")]
    TooManyMembers,
    #[error("list member {0} has an invalid key")]
    Key(usize),
    #[error("list member {0} has an invalid value")]
    Value(usize),
    #[error("list member {0} repeats an earlier key")]
    DuplicateKey(usize),
}

// === impl TraceId, SpanId ===

impl TraceId {
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    pub const fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// Not all zeroes: an id a header may carry.
    pub fn is_valid(&self) -> bool {
        self.0 != [0; 16]
    }
}

impl SpanId {
    pub const fn from_bytes(bytes: [u8; 8]) -> Self {
        Self(bytes)
    }

    pub const fn to_bytes(self) -> [u8; 8] {
        self.0
    }

    pub fn is_valid(&self) -> bool {
        self.0 != [0; 8]
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

// === impl TraceFlags ===

impl TraceFlags {
    pub const SAMPLED: TraceFlags = TraceFlags(0x01);
    pub const NOT_SAMPLED: TraceFlags = TraceFlags(0x00);

    /// From the wire: the bits this version does not define are dropped.
    pub const fn from_bits(bits: u8) -> Self {
        Self(bits & Self::SAMPLED.0)
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    /// The caller may have recorded this request: a recording callee should record it too.
    pub const fn is_sampled(self) -> bool {
        self.0 & Self::SAMPLED.0 != 0
    }
}

// === impl TraceParent ===

impl TraceParent {
    /// Parses a `traceparent` value (surrounding spaces and tabs allowed).
    ///
    /// Version `00` must be exactly that version's format. A later version is read as the spec
    /// says, as far as `00` defines it: at least 55 characters, the three fields at their `00`
    /// positions, then the end or a dash; whatever follows is not interpreted.
    pub fn parse(value: &[u8]) -> Result<Self, TraceParentError> {
        let value = value.trim_ascii();
        let version = match value {
            [a, b, b'-', ..] => hex_byte(*a, *b).ok_or(TraceParentError::Version)?,
            _ => return Err(TraceParentError::Version),
        };
        if version == 0xff {
            return Err(TraceParentError::ForbiddenVersion);
        }
        if (version == 0 && value.len() != TRACEPARENT_LEN) || value.len() < TRACEPARENT_LEN {
            return Err(TraceParentError::Length);
        }
        // The fields at their version-00 positions: trace-id 3..35, parent-id 36..52, flags
        // 53..55, each followed by a dash (or, after the flags, the end).
        if value[35] != b'-' || value[52] != b'-' || value.get(55).is_some_and(|c| *c != b'-') {
            return Err(TraceParentError::Delimiter);
        }
        let mut trace_id = [0; 16];
        hex_field(&value[3..35], &mut trace_id).ok_or(TraceParentError::Field("trace-id"))?;
        let mut parent_id = [0; 8];
        hex_field(&value[36..52], &mut parent_id).ok_or(TraceParentError::Field("parent-id"))?;
        let flags = hex_byte(value[53], value[54]).ok_or(TraceParentError::Field("trace-flags"))?;
        let parsed = TraceParent {
            trace_id: TraceId(trace_id),
            parent_id: SpanId(parent_id),
            flags: TraceFlags::from_bits(flags),
        };
        if !parsed.trace_id.is_valid() {
            return Err(TraceParentError::ZeroTraceId);
        }
        if !parsed.parent_id.is_valid() {
            return Err(TraceParentError::ZeroParentId);
        }
        Ok(parsed)
    }

    /// The same trace, as seen from `span`: what to send on a request that `span` makes.
    #[must_use]
    pub fn with_parent(self, span: SpanId) -> Self {
        TraceParent {
            parent_id: span,
            ..self
        }
    }

    /// The version-`00` value, as bytes (no allocation; the header is made from them).
    pub fn encode(&self) -> [u8; TRACEPARENT_LEN] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'-'; TRACEPARENT_LEN];
        let mut put = |at: usize, bytes: &[u8]| {
            for (i, b) in bytes.iter().enumerate() {
                out[at + 2 * i] = HEX[usize::from(b >> 4)];
                out[at + 2 * i + 1] = HEX[usize::from(b & 0x0f)];
            }
        };
        put(0, &[0]);
        put(3, &self.trace_id.0);
        put(36, &self.parent_id.0);
        put(53, &[self.flags.0]);
        out
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flags = self.flags.0;
        write!(f, "00-{}-{}-{flags:02x}", self.trace_id, self.parent_id)
    }
}

/// One byte from two lowercase hex digits.
fn hex_byte(hi: u8, lo: u8) -> Option<u8> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    Some((nibble(hi)? << 4) | nibble(lo)?)
}

/// Fills `out` from lowercase hex `text` of exactly twice its length.
fn hex_field(text: &[u8], out: &mut [u8]) -> Option<()> {
    if text.len() != 2 * out.len() {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = hex_byte(pair[0], pair[1])?;
    }
    Some(())
}

// === impl TraceState ===

impl<'a> TraceState<'a> {
    /// Checks a `tracestate` value (several header fields combined with commas, as RFC 9110
    /// combines them): at most [`TRACESTATE_MAX_LEN`] characters and
    /// [`TRACESTATE_MAX_MEMBERS`] members, each `key=value` by the spec's grammar, no key twice.
    /// Empty members are allowed, as the spec requires; a value with none [`is_empty`].
    ///
    /// [`is_empty`]: TraceState::is_empty
    pub fn parse(value: &'a str) -> Result<Self, TraceStateError> {
        if value.len() > TRACESTATE_MAX_LEN {
            return Err(TraceStateError::TooLong);
        }
        let mut members = 0;
        for (index, member) in non_empty_members(value).enumerate() {
            if index == TRACESTATE_MAX_MEMBERS {
                return Err(TraceStateError::TooManyMembers);
            }
            let (key, val) = member.split_once('=').ok_or(TraceStateError::Key(index))?;
            if !valid_key(key) {
                return Err(TraceStateError::Key(index));
            }
            if !valid_value(val) {
                return Err(TraceStateError::Value(index));
            }
            // At most 32 members, so the quadratic scan is at most 496 short comparisons.
            if non_empty_members(value)
                .take(index)
                .any(|earlier| earlier.split_once('=').is_some_and(|(k, _)| k == key))
            {
                return Err(TraceStateError::DuplicateKey(index));
            }
            members = index + 1;
        }
        Ok(Self { value, members })
    }

    /// The value as received (to send on unchanged).
    pub fn as_str(&self) -> &'a str {
        self.value
    }

    /// How many (non-empty) list members it has.
    pub fn len(&self) -> usize {
        self.members
    }

    /// Only empty members, or nothing: the spec asks senders not to send it.
    pub fn is_empty(&self) -> bool {
        self.members == 0
    }

    /// The `(key, value)` members, in order.
    pub fn members(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        non_empty_members(self.value).filter_map(|m| m.split_once('='))
    }
}

/// The list members of `value` with their surrounding spaces and tabs removed, empty ones
/// skipped.
fn non_empty_members(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(|m| m.trim_matches([' ', '\t']))
        .filter(|m| !m.is_empty())
}

/// `key = ( lcalpha / DIGIT ) 0*255 ( keychar )`, keychar: lcalpha, DIGIT, `_ - * / @`.
fn valid_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    let Some(first) = bytes.first() else {
        return false;
    };
    bytes.len() <= 256
        && (first.is_ascii_lowercase() || first.is_ascii_digit())
        && bytes
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-*/@".contains(c))
}

/// `value = 0*255(chr) nblk-chr`: printable ASCII but `,` and `=`, not ending in a space.
fn valid_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    (1..=256).contains(&bytes.len())
        && bytes.last() != Some(&b' ')
        && bytes
            .iter()
            .all(|c| (0x20..=0x7e).contains(c) && *c != b',' && *c != b'=')
}

#[cfg(test)]
mod tests;
