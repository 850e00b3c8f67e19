//! The trace context of the request being served, as task-local state: the inbound layer puts
//! it in [`CURRENT`] around the application's work, and the outbound client reads it there to
//! continue the trace on each call that work makes.

use http::{HeaderMap, HeaderName, HeaderValue};
use smi_core::telemetry::trace_context::{
    SpanId, TRACESTATE_MAX_LEN, TraceFlags, TraceId, TraceParent, TraceState,
};

pub(crate) const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub(crate) const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

tokio::task_local! {
    /// The trace context of the request this task is serving, set by `smi-server`'s inbound
    /// layers while the application's service runs (its `call` and its future). Work moved to
    /// another task (`tokio::spawn`) does not inherit it: carry it over with [`current`] and
    /// `CURRENT.scope(context, future)`.
    pub static CURRENT: TraceContext;
}

/// The context in scope, if any (a clone: a few words and, with a `tracestate`, a reference
/// count).
pub fn current() -> Option<TraceContext> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Where a request stands in a trace: its trace, the span doing the work now (the parent of the
/// spans of the calls it makes), the sampled flag, and the vendors' `tracestate`, carried as
/// received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// `parent_id` is the current span's id: what a call made now sends as its parent.
    pub traceparent: TraceParent,
    /// Checked ([`TraceState::parse`]) and never empty.
    pub tracestate: Option<HeaderValue>,
}

impl TraceContext {
    /// A new trace (random id) whose first span is `span`, sampled: a workload that records
    /// spans starts the traces it records.
    pub fn new_root(span: SpanId) -> Self {
        Self {
            traceparent: TraceParent {
                trace_id: new_trace_id(),
                parent_id: span,
                flags: TraceFlags::SAMPLED,
            },
            tracestate: None,
        }
    }

    /// The context a request carries: its `traceparent` (exactly one, valid) and `tracestate`.
    /// `None` when there is none or it is malformed or repeated, which starts a new trace; a
    /// bad `tracestate` alone is dropped, as the spec says.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let mut values = headers.get_all(TRACEPARENT).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        let traceparent = TraceParent::parse(value.as_bytes()).ok()?;
        Some(Self {
            traceparent,
            tracestate: tracestate(headers),
        })
    }

    pub fn trace_id(&self) -> TraceId {
        self.traceparent.trace_id
    }

    pub fn span_id(&self) -> SpanId {
        self.traceparent.parent_id
    }

    pub fn is_sampled(&self) -> bool {
        self.traceparent.flags.is_sampled()
    }

    /// The same trace, continued by `span`.
    #[must_use]
    pub fn child(&self, span: SpanId) -> Self {
        Self {
            traceparent: self.traceparent.with_parent(span),
            tracestate: self.tracestate.clone(),
        }
    }

    /// Writes the headers for a request made in this context, replacing any there were.
    pub fn inject(&self, headers: &mut HeaderMap) {
        if let Ok(value) = HeaderValue::from_bytes(&self.traceparent.encode()) {
            headers.insert(TRACEPARENT, value);
        }
        match &self.tracestate {
            Some(state) => headers.insert(TRACESTATE, state.clone()),
            None => headers.remove(TRACESTATE),
        };
    }
}

/// The request's `tracestate`, its fields combined, if it is valid and not empty.
fn tracestate(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut values = headers.get_all(TRACESTATE).iter();
    let first = values.next()?;
    let Some(second) = values.next() else {
        let state = TraceState::parse(first.to_str().ok()?).ok()?;
        return (!state.is_empty()).then(|| first.clone());
    };
    // Several fields: combined with commas (RFC 9110), bounded before it is checked.
    let mut combined = String::with_capacity(TRACESTATE_MAX_LEN);
    combined.push_str(first.to_str().ok()?);
    for value in std::iter::once(second).chain(values) {
        let value = value.to_str().ok()?;
        if combined.len() + 1 + value.len() > TRACESTATE_MAX_LEN {
            return None;
        }
        combined.push(',');
        combined.push_str(value);
    }
    let state = TraceState::parse(&combined).ok()?;
    if state.is_empty() {
        return None;
    }
    HeaderValue::from_str(&combined).ok()
}

/// A random span id (never the invalid all-zero one).
pub(crate) fn new_span_id() -> SpanId {
    loop {
        let id = SpanId::from_bytes(rand::random::<u64>().to_be_bytes());
        if id.is_valid() {
            return id;
        }
    }
}

fn new_trace_id() -> TraceId {
    loop {
        let id = TraceId::from_bytes(rand::random::<u128>().to_be_bytes());
        if id.is_valid() {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn a_valid_traceparent_is_read_with_its_tracestate() {
        let ctx = TraceContext::from_headers(&headers(&[
            ("traceparent", PARENT),
            ("tracestate", "rojo=00f067aa0ba902b7"),
        ]));
        let ctx = ctx.unwrap_or_else(|| panic!("no context"));
        assert_eq!(
            ctx.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(ctx.span_id().to_string(), "00f067aa0ba902b7");
        assert!(ctx.is_sampled());
        assert_eq!(
            ctx.tracestate.as_ref().map(|v| v.as_bytes()),
            Some(&b"rojo=00f067aa0ba902b7"[..])
        );
    }

    #[test]
    fn malformed_or_repeated_traceparents_give_no_context() {
        assert_eq!(TraceContext::from_headers(&headers(&[])), None);
        assert_eq!(
            TraceContext::from_headers(&headers(&[("traceparent", "00-xyz")])),
            None
        );
        assert_eq!(
            TraceContext::from_headers(&headers(&[
                ("traceparent", PARENT),
                ("traceparent", PARENT)
            ])),
            None
        );
    }

    #[test]
    fn tracestate_fields_are_combined_and_a_bad_one_is_dropped_alone() {
        let ctx = TraceContext::from_headers(&headers(&[
            ("traceparent", PARENT),
            ("tracestate", "rojo=1"),
            ("tracestate", "congo=2"),
        ]));
        let state = ctx.and_then(|c| c.tracestate);
        assert_eq!(
            state.as_ref().map(|v| v.as_bytes()),
            Some(&b"rojo=1,congo=2"[..])
        );
        for bad in ["Rojo=1", "", " , "] {
            let ctx = TraceContext::from_headers(&headers(&[
                ("traceparent", PARENT),
                ("tracestate", bad),
            ]));
            let ctx = ctx.unwrap_or_else(|| panic!("the traceparent alone is valid"));
            assert_eq!(ctx.tracestate, None, "{bad:?}");
        }
        let long: &'static str = Box::leak(format!("a={}", "x".repeat(255)).into_boxed_str());
        let ctx = TraceContext::from_headers(&headers(&[
            ("traceparent", PARENT),
            ("tracestate", long),
            ("tracestate", long.replace('a', "b").leak()),
        ]));
        assert_eq!(
            ctx.and_then(|c| c.tracestate),
            None,
            "over 512 once combined"
        );
    }

    #[test]
    fn a_child_keeps_the_trace_and_flags_and_injects_its_own_span() {
        let parent = TraceContext::from_headers(&headers(&[
            ("traceparent", PARENT),
            ("tracestate", "rojo=1"),
        ]));
        let parent = parent.unwrap_or_else(|| panic!("no context"));
        let span = new_span_id();
        let child = parent.child(span);
        let mut out = headers(&[("tracestate", "stale=1")]);
        child.inject(&mut out);
        assert_eq!(
            out["traceparent"].to_str().ok(),
            Some(format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{span}-01").as_str())
        );
        assert_eq!(out.get_all("tracestate").iter().count(), 1);
        assert_eq!(out["tracestate"], "rojo=1");
        let root = TraceContext::new_root(span);
        assert!(root.is_sampled() && root.trace_id().is_valid());
        root.inject(&mut out);
        assert!(
            out.get("tracestate").is_none(),
            "a new trace carries no old tracestate"
        );
    }
}
