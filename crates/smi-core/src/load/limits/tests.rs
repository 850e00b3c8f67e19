use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::load::{Loader, load_str};

const ACCESS: &str = include_str!("../../../../../examples/bookstore/policy/bookstore-access.yaml");
const SPLIT: &str = include_str!("../../../../../examples/bookstore/policy/bookstore-split.yaml");

fn depth(text: &str, format: Format) -> usize {
    nesting(text, format).depth
}

/// `[[[...]]]`, `n` deep.
fn brackets(n: usize) -> String {
    format!("{}{}", "[".repeat(n), "]".repeat(n))
}

/// `k0:\n  k1:\n    k2: ...`, `n` block mappings deep.
fn indented_keys(n: usize) -> String {
    (0..n)
        .map(|i| format!("{}k{i}:\n", "  ".repeat(i)))
        .collect()
}

#[test]
fn a_length_over_the_limit_is_refused_naming_the_source_and_the_limit() {
    assert!(check_len(MAX_SOURCE_BYTES as u64).is_ok());
    let e = check_len(MAX_SOURCE_BYTES as u64 + 1)
        .unwrap_err()
        .diagnostic("p.yaml");
    assert!(e.is_error());
    assert_eq!(
        e.to_string(),
        "p.yaml: 4194305 bytes, over the limit of 4194304 bytes (4 MiB) for one policy file; skipped"
    );
}

#[test]
fn the_loader_refuses_oversized_text_without_parsing_it() {
    // Valid YAML throughout, so only the size check can refuse it.
    let text = format!("{SPLIT}\n{}", "#".repeat(MAX_SOURCE_BYTES));
    let loaded = load_str("big.yaml", &text, Format::Yaml);
    assert!(loaded.policy.is_empty());
    let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("big.yaml: "), "{errors:?}");
    assert!(errors[0].contains("limit of 4194304 bytes"), "{errors:?}");
}

#[test]
fn flow_nesting_over_the_limit_is_refused_naming_the_document_and_line() {
    let text = format!("a: 1\n---\nb: 2\nc: {}\n", brackets(MAX_DEPTH));
    let e = check_depth(&text, Format::Yaml)
        .unwrap_err()
        .diagnostic("deep.yaml");
    assert_eq!(
        e.to_string(),
        "deep.yaml:doc 2: line 4: nested 65 levels deep, over the limit of 64; file not parsed"
    );
    let fits = format!("c: {}\n", brackets(MAX_DEPTH - 1));
    assert!(check_depth(&fits, Format::Yaml).is_ok());
}

#[test]
fn json_nests_by_brackets_only() {
    let pretty = serde_json::to_string_pretty(&serde_json::json!({"a": {"b": [1, {"c": []}]}}));
    assert_eq!(depth(&pretty.unwrap(), Format::Json), 5);
    assert!(check_depth(&brackets(MAX_DEPTH), Format::Json).is_ok());
    let e = check_depth(&brackets(MAX_DEPTH + 1), Format::Json)
        .unwrap_err()
        .diagnostic("deep.json");
    assert!(
        e.to_string()
            .starts_with("deep.json:doc 1: line 1: nested 65"),
        "{e}"
    );
}

#[test]
fn block_nesting_over_the_limit_is_refused() {
    assert_eq!(depth(&indented_keys(MAX_DEPTH), Format::Yaml), MAX_DEPTH);
    let e = check_depth(&indented_keys(MAX_DEPTH + 1), Format::Yaml)
        .unwrap_err()
        .diagnostic("deep.yaml");
    assert!(
        e.to_string().contains("line 65: nested 65 levels deep"),
        "{e}"
    );
    // Compact sequences nest on one line.
    let dashes = format!("{}x\n", "- ".repeat(MAX_DEPTH + 1));
    assert_eq!(depth(&dashes, Format::Yaml), MAX_DEPTH + 1);
    // A sequence at its key's column is a level of its own.
    let layered: String = (0..40)
        .map(|i| format!("{0}k{i}:\n{0}- ", "  ".repeat(i)))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(depth(&layered, Format::Yaml), 80);
}

#[test]
fn the_loader_refuses_deep_text_and_keeps_loading_other_sources() {
    let mut loader = Loader::new();
    loader.add_text("deep.yaml", &format!("a: {}", brackets(100)), Format::Yaml);
    loader.add_text("split.yaml", SPLIT, Format::Yaml);
    let loaded = loader.finish();
    assert_eq!(loaded.policy.splits.len(), 1);
    let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("deep.yaml:doc 1: line 1: nested 101 levels deep"));
}

#[test]
fn ordinary_policy_passes_and_nests_a_few_levels() {
    for text in [ACCESS, SPLIT] {
        let n = nesting(text, Format::Yaml);
        assert!((3..=8).contains(&n.depth), "{n:?}");
        assert!(check_depth(text, Format::Yaml).is_ok());
    }
    let list = "\
apiVersion: v1
kind: List
items:
- kind: TrafficTarget
  spec:
    rules:
    - kind: HTTPRouteGroup
      matches: [a, b]
";
    assert_eq!(depth(list, Format::Yaml), 7);
}

#[test]
fn quoted_scalars_comments_and_block_scalars_do_not_nest() {
    let deep = brackets(MAX_DEPTH + 1);
    let text = format!(
        "a: \"{deep} \\\" {deep}\"\nb: '{deep} '' {deep}'\n# {deep}\nc: x # {deep}\n\
         d: |-\n  {deep}\n  - - - - -\n\n    k:\n      {deep}\ne: >\n  {deep}\n\
         f: \"two\n  {deep} lines\"\ng: a[b]\n"
    );
    assert_eq!(nesting(&text, Format::Yaml).depth, 1, "{text}");
    let json = format!("{{\"a\": \"{deep} \\\" {deep}\"}}");
    assert_eq!(depth(&json, Format::Json), 1);
}

#[test]
fn documents_are_counted_as_the_parser_counts_them() {
    let deep = brackets(MAX_DEPTH + 1);
    for (text, document) in [
        (format!("a: {deep}"), 1),
        (format!("---\na: {deep}"), 1),
        (format!("%YAML 1.2\n---\na: {deep}"), 1),
        (format!("a: 1\n---\n---\na: {deep}"), 3),
        (format!("a: 1\n...\na: {deep}"), 2),
        (format!("a: 1\n...\n---\na: {deep}"), 2),
        (format!("a: |\n  x\n--- {deep}"), 2),
    ] {
        assert_eq!(nesting(&text, Format::Yaml).document, document, "{text}");
    }
}

fn value_depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(value_depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(value_depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[ -~]{0,8}|[a-z]{1,3}\n[a-z ]{0,5}".prop_map(Value::String),
    ];
    leaf.prop_recursive(8, 64, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[ -~]{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Exact on what the serializers write, so the limit never refuses an ordinary document.
    #[test]
    fn measures_serialized_documents_exactly(value in any_value()) {
        let expected = value_depth(&value);
        let yaml = serde_yaml_ng::to_string(&value).unwrap();
        prop_assert_eq!(depth(&yaml, Format::Yaml), expected, "{}", yaml);
        for json in [serde_json::to_string(&value).unwrap(), serde_json::to_string_pretty(&value).unwrap()] {
            prop_assert_eq!(depth(&json, Format::Json), expected, "{}", json);
            prop_assert_eq!(depth(&json, Format::Yaml), expected, "{}", json);
        }
    }
}
