use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;

use super::*;
use crate::model::Method;

fn compile(
    path: Option<&str>,
    methods: MethodSet,
    headers: &[(&str, &str)],
    mode: PathMatch,
) -> CompiledMatch {
    let m = HttpMatch {
        name: "m".into(),
        path_regex: path.map(str::to_owned),
        methods,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    CompiledMatch::compile(&m, mode, &mut PatternCache::default())
}

fn req<'a>(method: &'a str, path: &'a str, headers: &'a HeaderMap) -> HttpRequest<'a> {
    HttpRequest::new(method, path, headers)
}

#[test]
fn path_regex_is_anchored_at_the_start_only_by_default() {
    let h = HeaderMap::new();
    let m = compile(Some("/api"), MethodSet::ANY, &[], PathMatch::Prefix);
    assert!(m.matches(&req("GET", "/api", &h)));
    assert!(m.matches(&req("GET", "/api/v1", &h)));
    assert!(!m.matches(&req("GET", "/v1/api", &h)));
}

#[test]
fn full_match_mode_requires_the_whole_path() {
    let h = HeaderMap::new();
    let m = compile(Some("/api"), MethodSet::ANY, &[], PathMatch::Full);
    assert!(m.matches(&req("GET", "/api", &h)));
    assert!(!m.matches(&req("GET", "/api/v1", &h)));
}

#[test]
fn query_string_is_ignored() {
    let h = HeaderMap::new();
    let m = compile(Some("/books$"), MethodSet::ANY, &[], PathMatch::Prefix);
    assert!(m.matches(&req("GET", "/books?page=2", &h)));
}

#[test]
fn alternation_is_anchored_as_a_whole() {
    let h = HeaderMap::new();
    let m = compile(Some("/a|/b"), MethodSet::ANY, &[], PathMatch::Prefix);
    assert!(m.matches(&req("GET", "/b", &h)));
    assert!(!m.matches(&req("GET", "/x/b", &h)));
}

#[test]
fn methods_restrict() {
    let h = HeaderMap::new();
    let m = compile(
        None,
        MethodSet::EMPTY.with(Method::Get),
        &[],
        PathMatch::Prefix,
    );
    assert!(m.matches(&req("GET", "/", &h)));
    assert!(!m.matches(&req("POST", "/", &h)));
}

#[test]
fn header_names_are_case_insensitive_and_values_full_match() {
    let mut h = HeaderMap::new();
    h.insert("User-Agent", HeaderValue::from_static("Mozilla Firefox/1"));
    let m = compile(
        None,
        MethodSet::ANY,
        &[("user-agent", ".*Firefox.*")],
        PathMatch::Prefix,
    );
    assert!(m.matches(&req("GET", "/", &h)));
    let partial = compile(
        None,
        MethodSet::ANY,
        &[("user-agent", "Firefox")],
        PathMatch::Prefix,
    );
    assert!(
        !partial.matches(&req("GET", "/", &h)),
        "values are full-matched"
    );
    let missing = compile(
        None,
        MethodSet::ANY,
        &[("x-debug", ".*")],
        PathMatch::Prefix,
    );
    assert!(
        !missing.matches(&req("GET", "/", &h)),
        "a header condition requires the header"
    );
}

#[test]
fn every_header_condition_must_hold() {
    let mut h = HeaderMap::new();
    h.insert("a", HeaderValue::from_static("1"));
    let m = compile(
        None,
        MethodSet::ANY,
        &[("a", "1"), ("b", "2")],
        PathMatch::Prefix,
    );
    assert!(!m.matches(&req("GET", "/", &h)));
    h.insert("b", HeaderValue::from_static("2"));
    assert!(m.matches(&req("GET", "/", &h)));
}

#[test]
fn host_falls_back_to_authority() {
    let h = HeaderMap::new();
    let m = compile(
        None,
        MethodSet::ANY,
        &[("host", "bookstore.*")],
        PathMatch::Prefix,
    );
    let mut r = req("GET", "/", &h);
    assert!(!m.matches(&r));
    r.authority = Some("bookstore.default:8080");
    assert!(m.matches(&r));
}

#[test]
fn host_is_the_authority_when_there_is_one() {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("bookstore.default"));
    let m = compile(
        None,
        MethodSet::ANY,
        &[("host", "bookstore.*")],
        PathMatch::Prefix,
    );
    let mut r = req("GET", "/", &h);
    assert!(m.matches(&r), "no authority: the host header");
    r.authority = Some("admin.default");
    assert!(
        !m.matches(&r),
        "the authority decides, not a host header beside it"
    );
}

#[test]
fn a_repeated_header_is_matched_as_one_joined_value() {
    let m = compile(
        None,
        MethodSet::ANY,
        &[("x-role", "reader")],
        PathMatch::Prefix,
    );
    let mut h = HeaderMap::new();
    h.append("x-role", HeaderValue::from_static("reader"));
    assert!(m.matches(&req("GET", "/", &h)));
    // A second copy that the policy would not allow: the pair is "reader,admin", which the
    // full match refuses; no copy is left unchecked.
    h.append("x-role", HeaderValue::from_static("admin"));
    assert!(!m.matches(&req("GET", "/", &h)));
    let joined = compile(
        None,
        MethodSet::ANY,
        &[("x-role", "reader,admin")],
        PathMatch::Prefix,
    );
    assert!(joined.matches(&req("GET", "/", &h)));
    assert_eq!(
        joined_value(&h, &HeaderName::from_static("x-role")).as_deref(),
        Some("reader,admin")
    );
    let mut cookies = HeaderMap::new();
    cookies.append("cookie", HeaderValue::from_static("a=1"));
    cookies.append("cookie", HeaderValue::from_static("session=x"));
    assert_eq!(
        joined_value(&cookies, &http::header::COOKIE).as_deref(),
        Some("a=1; session=x")
    );
}

proptest! {
    #[test]
    fn literal_prefix_matches_exactly_the_paths_that_start_with_it(
        prefix in "/[a-z]{1,8}", rest in "[a-z/]{0,8}", other in "/[a-z/]{0,12}"
    ) {
        let h = HeaderMap::new();
        let m = compile(Some(&regex::escape(&prefix)), MethodSet::ANY, &[], PathMatch::Prefix);
        let path = format!("{prefix}{rest}");
        prop_assert!(m.matches(&req("GET", &path, &h)));
        prop_assert_eq!(m.matches(&req("GET", &other, &h)), other.starts_with(&prefix));
    }

    #[test]
    fn full_mode_admits_a_subset_of_prefix_mode(re in "[a-z/.*]{1,6}", path in "/[a-z/]{0,10}") {
        prop_assume!(regex::Regex::new(&re).is_ok());
        let h = HeaderMap::new();
        let full = compile(Some(&re), MethodSet::ANY, &[], PathMatch::Full);
        let prefix = compile(Some(&re), MethodSet::ANY, &[], PathMatch::Prefix);
        if full.matches(&req("GET", &path, &h)) {
            prop_assert!(prefix.matches(&req("GET", &path, &h)));
        }
    }

    #[test]
    fn any_method_set_admits_every_token(method in "[A-Z]{1,10}") {
        let h = HeaderMap::new();
        let m = compile(None, MethodSet::ANY, &[], PathMatch::Prefix);
        prop_assert!(m.matches(&req(&method, "/", &h)));
    }

    #[test]
    fn header_value_match_is_case_sensitive_full_match(value in "[a-zA-Z0-9]{1,12}") {
        let mut h = HeaderMap::new();
        h.insert("x-v", HeaderValue::from_str(&value).unwrap());
        let exact = compile(None, MethodSet::ANY, &[("X-V", &regex::escape(&value))], PathMatch::Prefix);
        prop_assert!(exact.matches(&req("GET", "/", &h)));
        let longer = compile(None, MethodSet::ANY, &[("x-v", &format!("{}x", regex::escape(&value)))], PathMatch::Prefix);
        prop_assert!(!longer.matches(&req("GET", "/", &h)));
    }
}
