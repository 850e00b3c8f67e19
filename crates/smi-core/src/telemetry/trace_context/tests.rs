//! The W3C spec's examples, and the cases of its test suite (w3c/trace-context `test/`) that
//! a parser decides alone.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn parse(value: &str) -> Result<TraceParent, TraceParentError> {
    TraceParent::parse(value.as_bytes())
}

#[test]
fn the_specs_examples_parse_with_their_sampled_flag() {
    let sampled = parse(&format!("00-{TRACE}-{PARENT}-01")).unwrap();
    assert_eq!(sampled.trace_id.to_string(), TRACE);
    assert_eq!(sampled.parent_id.to_string(), PARENT);
    assert!(sampled.flags.is_sampled());
    let not_sampled = parse(&format!("00-{TRACE}-{PARENT}-00")).unwrap();
    assert!(!not_sampled.flags.is_sampled());
    let other = parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
    assert_eq!(
        other.trace_id.to_bytes()[..4],
        [0x0a, 0xf7, 0x65, 0x19],
        "bytes in header order"
    );
}

#[test]
fn formatting_writes_version_00_and_round_trips() {
    let value = format!("00-{TRACE}-{PARENT}-01");
    let parsed = parse(&value).unwrap();
    assert_eq!(parsed.to_string(), value);
    assert_eq!(&parsed.encode()[..], value.as_bytes());
    let child = parsed.with_parent(SpanId::from_bytes([
        0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31,
    ]));
    assert_eq!(child.to_string(), format!("00-{TRACE}-b7ad6b7169203331-01"));
}

#[test]
fn only_the_sampled_flag_is_kept() {
    let flags = |f: &str| parse(&format!("00-{TRACE}-{PARENT}-{f}")).unwrap().flags;
    assert_eq!(
        flags("09"),
        TraceFlags::SAMPLED,
        "00001001: sampled, and a reserved bit"
    );
    assert_eq!(flags("ff"), TraceFlags::SAMPLED);
    assert_eq!(flags("02"), TraceFlags::NOT_SAMPLED);
    assert!(
        parse(&format!("00-{TRACE}-{PARENT}-09"))
            .unwrap()
            .to_string()
            .ends_with("-01")
    );
}

#[test]
fn malformed_values_are_rejected() {
    let zeros32 = "0".repeat(32);
    let cases = [
        (String::new(), TraceParentError::Version),
        ("00".to_owned(), TraceParentError::Version),
        (format!("0-{TRACE}-{PARENT}-01"), TraceParentError::Version),
        (format!("0g-{TRACE}-{PARENT}-01"), TraceParentError::Version),
        (format!("0A-{TRACE}-{PARENT}-01"), TraceParentError::Version),
        (
            format!("ff-{TRACE}-{PARENT}-01"),
            TraceParentError::ForbiddenVersion,
        ),
        // Wrong lengths: a short trace-id, a long parent-id, one flag digit, trailing data.
        (
            format!("00-{}-{PARENT}-01", &TRACE[1..]),
            TraceParentError::Length,
        ),
        (format!("00-{TRACE}-{PARENT}0-01"), TraceParentError::Length),
        (format!("00-{TRACE}-{PARENT}-1"), TraceParentError::Length),
        (format!("00-{TRACE}-{PARENT}-01-"), TraceParentError::Length),
        (
            format!("00-{TRACE}-{PARENT}-01-what-the-future-will-be-like"),
            TraceParentError::Length,
        ),
        // Right length, fields in the wrong places.
        (
            format!("00-{TRACE}0{PARENT}-01"),
            TraceParentError::Delimiter,
        ),
        (format!("00_{TRACE}-{PARENT}-01"), TraceParentError::Version),
        // Uppercase or non-hex digits in each field.
        (
            format!("00-{}-{PARENT}-01", TRACE.to_uppercase()),
            TraceParentError::Field("trace-id"),
        ),
        (
            format!("00-{}-{PARENT}-01", TRACE.replace('4', "g")),
            TraceParentError::Field("trace-id"),
        ),
        (
            format!("00-{TRACE}-00F067AA0BA902B7-01"),
            TraceParentError::Field("parent-id"),
        ),
        (
            format!("00-{TRACE}-{PARENT}-0A"),
            TraceParentError::Field("trace-flags"),
        ),
        (
            format!("00-{TRACE}-{PARENT}-.0"),
            TraceParentError::Field("trace-flags"),
        ),
        // All-zero ids.
        (
            format!("00-{zeros32}-{PARENT}-01"),
            TraceParentError::ZeroTraceId,
        ),
        (
            format!("00-{TRACE}-0000000000000000-01"),
            TraceParentError::ZeroParentId,
        ),
    ];
    for (value, error) in cases {
        assert_eq!(parse(&value), Err(error), "{value:?}");
    }
}

#[test]
fn surrounding_whitespace_is_ignored() {
    assert!(parse(&format!(" \t00-{TRACE}-{PARENT}-01 \t")).is_ok());
}

#[test]
fn a_later_version_is_read_as_far_as_version_00_defines_it() {
    let expected = parse(&format!("00-{TRACE}-{PARENT}-01")).unwrap();
    for value in [
        format!("cc-{TRACE}-{PARENT}-01"),
        format!("cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like"),
        format!("01-{TRACE}-{PARENT}-01-"),
    ] {
        assert_eq!(parse(&value), Ok(expected), "{value}");
        // Propagated as the version this implementation knows.
        assert!(parse(&value).unwrap().to_string().starts_with("00-"));
    }
    for (value, error) in [
        (
            format!("cc-{TRACE}-{PARENT}-01.what-the-future-will-be-like"),
            TraceParentError::Delimiter,
        ),
        (format!("cc-{TRACE}-{PARENT}-1"), TraceParentError::Length),
        (
            format!("cc-{TRACE}-{}-01", "0".repeat(16)),
            TraceParentError::ZeroParentId,
        ),
        (
            format!("cc-{}-{PARENT}-01", TRACE.to_uppercase()),
            TraceParentError::Field("trace-id"),
        ),
    ] {
        assert_eq!(parse(&value), Err(error), "{value}");
    }
}

#[test]
fn the_specs_tracestate_examples_are_carried_as_they_are() {
    for (value, members) in [
        ("congo=t61rcWkgMzE", 1),
        ("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", 2),
        ("congo=ucfJifl5GOE,rojo=00f067aa0ba902b7", 2),
        ("vendorname1=opaqueValue1,vendorname2=opaqueValue2", 2),
        // Multi-tenant keys, optional whitespace, empty members, a value with a leading space.
        ("fw529a3039@dt=CAES, 1a-2f@x_/*=v", 2),
        (" rojo=1 ,\t, ,congo= 2", 2),
    ] {
        let state = TraceState::parse(value).unwrap();
        assert_eq!(state.as_str(), value);
        assert_eq!(state.len(), members, "{value}");
    }
    let state = TraceState::parse("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE").unwrap();
    assert_eq!(
        state.members().collect::<Vec<_>>(),
        [("rojo", "00f067aa0ba902b7"), ("congo", "t61rcWkgMzE")]
    );
}

#[test]
fn an_empty_tracestate_is_accepted_and_is_empty() {
    for value in ["", " ", ",", " ,\t, "] {
        assert!(TraceState::parse(value).unwrap().is_empty(), "{value:?}");
    }
}

#[test]
fn tracestate_beyond_the_limits_is_dropped() {
    let members = |n: usize| {
        (0..n)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",")
    };
    assert_eq!(TraceState::parse(&members(32)).unwrap().len(), 32);
    // Empty members do not count against the 32.
    assert_eq!(
        TraceState::parse(&format!("{},,,", members(32)))
            .unwrap()
            .len(),
        32
    );
    assert_eq!(
        TraceState::parse(&members(33)),
        Err(TraceStateError::TooManyMembers)
    );
    let long = format!("a={}", "x".repeat(254));
    let two = format!(
        "{long},b={}",
        "y".repeat(TRACESTATE_MAX_LEN - long.len() - 3)
    );
    assert_eq!(two.len(), TRACESTATE_MAX_LEN);
    assert!(TraceState::parse(&two).is_ok());
    assert_eq!(
        TraceState::parse(&format!("{two}z")),
        Err(TraceStateError::TooLong)
    );
}

#[test]
fn malformed_tracestate_members_are_rejected() {
    let long_key = format!("{}=v", "k".repeat(257));
    let long_value = format!("k={}", "v".repeat(257));
    for (value, error) in [
        ("novalue", TraceStateError::Key(0)),
        ("a=1,Upper=2", TraceStateError::Key(1)),
        ("_a=1", TraceStateError::Key(0)),
        ("=1", TraceStateError::Key(0)),
        ("a b=1", TraceStateError::Key(0)),
        (long_key.as_str(), TraceStateError::Key(0)),
        ("a=", TraceStateError::Value(0)),
        ("a=b=c", TraceStateError::Value(0)),
        ("a=b\tc", TraceStateError::Value(0)),
        ("a=caf\u{e9}", TraceStateError::Value(0)),
        (long_value.as_str(), TraceStateError::Value(0)),
        ("a=1,b=2,a=3", TraceStateError::DuplicateKey(2)),
    ] {
        assert_eq!(TraceState::parse(value), Err(error), "{value:?}");
    }
}

proptest! {
    #[test]
    fn parsing_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = TraceParent::parse(&bytes);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = TraceState::parse(text);
        }
    }

    #[test]
    fn a_valid_traceparent_round_trips(trace in any::<[u8; 16]>(), span in any::<[u8; 8]>(), sampled: bool) {
        let parent = TraceParent {
            trace_id: TraceId::from_bytes(trace),
            parent_id: SpanId::from_bytes(span),
            flags: if sampled { TraceFlags::SAMPLED } else { TraceFlags::NOT_SAMPLED },
        };
        let parsed = TraceParent::parse(&parent.encode());
        if parent.trace_id.is_valid() && parent.parent_id.is_valid() {
            prop_assert_eq!(parsed, Ok(parent));
        } else {
            prop_assert!(parsed.is_err());
        }
    }
}
