//! Already-parsed documents: a Kubernetes object from a watch, a value from etcd. Each is one
//! document named by its origin (an object reference, a key), and it is read exactly as the text
//! of a JSON file of that name would be: the same classification, the same field checks, the
//! same diagnostics (`<origin>:doc 1: Kind ns/name: field: message`).
//!
//! The value goes through the text reader on purpose. There is then one reader for every
//! document, whatever carried it, and the [`limits`](super::limits) apply to values too: a value
//! from etcd is as untrusted as a file, and a deeply nested one must be refused before the
//! recursive field readers see it. The cost is one serialization per document, paid only when
//! the document changed (sources keep the last load of each origin).

use serde_json::Value;

use super::{Format, Loaded, Loader};

impl Loader {
    /// Reads one already-parsed document. `origin` names it in diagnostics and in the model's
    /// [`Origin`](crate::model::Origin) (document 1), as a file path names a file.
    pub fn add_value(&mut self, origin: &str, value: &Value) {
        // `Value`'s `Display` is its compact JSON; it cannot fail.
        self.add_text(origin, &value.to_string(), Format::Json);
    }
}

/// Convenience: load one already-parsed document.
pub fn load_value(origin: &str, value: &Value) -> Loaded {
    let mut loader = Loader::new();
    loader.add_value(origin, value);
    loader.finish()
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::load::limits::MAX_DEPTH;
    use crate::load::load_str;

    const SPLIT: &str = include_str!("../../../../examples/bookstore/policy/bookstore-split.yaml");

    /// The document of `yaml` as the YAML reader sees it before it reads the fields.
    fn parsed(yaml: &str) -> Value {
        Value::deserialize(serde_yaml_ng::Deserializer::from_str(yaml)).unwrap()
    }

    #[test]
    fn a_value_loads_to_the_same_model_and_diagnostics_as_its_yaml_text() {
        let broken = SPLIT.replace(
            "weight: 50\n  - service: bookstore-v2",
            "weight: -1\n  - service: bookstore-v2",
        );
        let unknown_kind =
            "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplat\nmetadata: {name: x}\n";
        for text in [SPLIT, broken.as_str(), unknown_kind] {
            let from_text = load_str("policy/split.yaml", text, Format::Yaml);
            let from_value = load_value("policy/split.yaml", &parsed(text));
            assert_eq!(from_value.policy, from_text.policy, "{text}");
            assert_eq!(from_value.diagnostics, from_text.diagnostics, "{text}");
            assert_eq!(from_value.skipped, from_text.skipped);
        }
        assert_eq!(load_value("s", &parsed(SPLIT)).policy.splits.len(), 1);
    }

    #[test]
    fn diagnostics_and_the_model_name_the_values_origin() {
        let origin = "kubernetes:split.smi-spec.io/TrafficSplit/bookstore/bookstore-split";
        let good = load_value(origin, &parsed(SPLIT));
        assert_eq!(&*good.policy.splits[0].meta.origin.source, origin);
        let bad = parsed(&SPLIT.replace(
            "weight: 50\n  - service: bookstore-v2",
            "weight: -1\n  - service: bookstore-v2",
        ));
        let errors: Vec<String> = load_value(origin, &bad)
            .errors()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with(&format!(
                "{origin}:doc 1: TrafficSplit bookstore/bookstore-split: spec.backends[0].weight: "
            )),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn a_value_nested_past_the_limit_is_refused_naming_its_origin() {
        let mut deep = Value::Null;
        for _ in 0..=MAX_DEPTH {
            deep = Value::Array(vec![deep]);
        }
        let value = serde_json::json!({
            "apiVersion": "split.smi-spec.io/v1alpha4",
            "kind": "TrafficSplit",
            "metadata": {"name": "x"},
            "spec": {"service": "x", "backends": deep},
        });
        let loaded = load_value("etcd:/smi/policy/x", &value);
        let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("etcd:/smi/policy/x:doc 1: "),
            "{}",
            errors[0]
        );
        assert!(loaded.policy.is_empty());
    }
}
