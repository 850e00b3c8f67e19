//! The loader never panics, whatever it is fed: arbitrary bytes, and arbitrary documents that
//! claim to be SMI resources (every apiVersion and kind, with fields of any type).

use proptest::prelude::*;
use serde_json::{Value, json};
use smi_core::{Format, Options, Snapshot, load_str};

const API_VERSIONS: &[&str] = &[
    "access.smi-spec.io/v1alpha1",
    "access.smi-spec.io/v1alpha2",
    "access.smi-spec.io/v1alpha3",
    "access.smi-spec.io/v1alpha9",
    "specs.smi-spec.io/v1alpha1",
    "specs.smi-spec.io/v1alpha4",
    "split.smi-spec.io/v1alpha1",
    "split.smi-spec.io/v1alpha4",
    "v1",
];
const KINDS: &[&str] = &[
    "TrafficTarget",
    "HTTPRouteGroup",
    "TCPRoute",
    "UDPRoute",
    "TrafficSplit",
    "List",
    "Deployment",
];
const KEYS: &[&str] = &[
    "spec",
    "destination",
    "sources",
    "rules",
    "specs",
    "matches",
    "name",
    "namespace",
    "kind",
    "port",
    "ports",
    "pathRegex",
    "methods",
    "headers",
    "service",
    "backends",
    "weight",
    "items",
];

fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-zA-Z0-9/.*()\\[\\]^$ -]{0,12}".prop_map(Value::String),
        prop::sample::select(KINDS).prop_map(|k| json!(k)),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

fn any_document() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(API_VERSIONS),
        prop::sample::select(KINDS),
        any_value(),
        any_value(),
    )
        .prop_map(|(api, kind, spec, extra)| {
            json!({
                "apiVersion": api,
                "kind": kind,
                "metadata": {"name": "n", "namespace": "ns"},
                "spec": spec,
                "matches": extra.clone(),
                "destination": extra.clone(),
                "sources": extra.clone(),
                "specs": extra,
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        for format in [Format::Yaml, Format::Json] {
            let loaded = load_str("fuzz", &text, format);
            Snapshot::compile(loaded.policy, Options::default());
        }
    }

    #[test]
    fn arbitrary_smi_shaped_documents_never_panic(docs in prop::collection::vec(any_document(), 1..4)) {
        let text = docs.iter().map(|d| serde_json::to_string(d).unwrap()).collect::<Vec<_>>().join("\n---\n");
        let loaded = load_str("fuzz.yaml", &text, Format::Yaml);
        // Every error names where it was found.
        for e in loaded.errors() {
            prop_assert!(e.to_string().starts_with("fuzz.yaml:doc "), "{e}");
        }
        Snapshot::compile(loaded.policy, Options::default());
    }
}
