//! What an apply does to each resource, against the values etcd holds: created, configured or
//! unchanged, and the line that says so.

use std::collections::BTreeMap;

use serde_json::Value;

use super::diff;
use super::objects::{Object, describe};
use super::txn::Write;
use crate::etcd::Entry;
use crate::etcd::keys::Keys;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Created,
    /// Stored with another value: this one, pretty-printed (for the dry run's diff).
    Configured {
        old: String,
    },
    /// Stored with this value (as JSON: the order of the keys and the spacing do not count).
    Unchanged,
}

/// One resource of an apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    pub object: Object,
    pub key: String,
    /// Its modification revision as read (0: absent).
    pub revision: i64,
    pub change: Change,
}

/// Each object against the value stored at its key.
pub fn plan(objects: Vec<Object>, stored: &BTreeMap<String, Entry>, keys: &Keys) -> Vec<Planned> {
    objects
        .into_iter()
        .map(|object| {
            let key = object.key(keys);
            let (revision, change) = match stored.get(&key) {
                None => (0, Change::Created),
                Some(entry) => {
                    let old = serde_json::from_slice::<Value>(&entry.value);
                    let change = match old {
                        Ok(old) if old == object.value => Change::Unchanged,
                        Ok(old) => Change::Configured { old: pretty(&old) },
                        Err(_) => Change::Configured {
                            old: String::from_utf8_lossy(&entry.value).into_owned(),
                        },
                    };
                    (entry.mod_revision, change)
                }
            };
            Planned {
                object,
                key,
                revision,
                change,
            }
        })
        .collect()
}

impl Planned {
    pub fn is_change(&self) -> bool {
        self.change != Change::Unchanged
    }

    /// The etcd write, for a change.
    pub fn write(&self) -> Option<Write> {
        self.is_change().then(|| Write {
            key: self.key.clone(),
            revision: self.revision,
            value: Some(self.object.bytes()),
        })
    }

    pub fn verb(&self) -> &'static str {
        match self.change {
            Change::Created => "created",
            Change::Configured { .. } => "configured",
            Change::Unchanged => "unchanged",
        }
    }

    /// `traffictarget.access.smi-spec.io shop/reviews configured`, ` (dry run)` after it in one.
    pub fn line(&self, dry_run: bool) -> String {
        let o = &self.object;
        format!(
            "{} {}{}",
            describe(o.kind, &o.namespace, &o.name),
            self.verb(),
            if dry_run { " (dry run)" } else { "" }
        )
    }

    /// For a configured resource, the diff of the stored value to the new one (pretty JSON).
    pub fn diff(&self) -> Vec<String> {
        match &self.change {
            Change::Configured { old } => diff::unified(old, &pretty(&self.object.value)),
            Change::Created | Change::Unchanged => Vec::new(),
        }
    }
}

fn pretty(value: &Value) -> String {
    // A `Value` always serializes; the compact form is a fallback that is never taken.
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()) + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::apply::kind::Kind;

    fn split(weight: u32) -> Value {
        serde_json::json!({
            "apiVersion": "split.smi-spec.io/v1alpha4",
            "kind": "TrafficSplit",
            "metadata": {"name": "books", "namespace": "shop"},
            "spec": {"service": "books", "backends": [{"service": "books-v1", "weight": weight}]},
        })
    }

    fn entry(text: &str, mod_revision: i64) -> Entry {
        Entry {
            value: text.as_bytes().into(),
            mod_revision,
        }
    }

    #[test]
    fn each_object_is_created_configured_or_unchanged_against_its_stored_value() {
        let keys = Keys::new("/m/");
        let key = "/m/policy/TrafficSplit/shop/books".to_owned();
        let object = Object::new(split(10)).unwrap();
        assert_eq!(object.kind, Kind::TrafficSplit);
        assert_eq!(object.key(&keys), key);

        let planned = plan(vec![object.clone()], &BTreeMap::new(), &keys);
        assert_eq!((planned[0].revision, planned[0].verb()), (0, "created"));
        assert_eq!(
            planned[0].line(false),
            "trafficsplit.split.smi-spec.io shop/books created"
        );
        assert_eq!(planned[0].write().unwrap().revision, 0);

        // Stored with its keys in another order and other spacing: the same value.
        let reordered = r#"{"spec": {"backends": [{"weight": 10, "service": "books-v1"}], "service": "books"},
            "metadata": {"namespace": "shop", "name": "books"},
            "kind": "TrafficSplit", "apiVersion": "split.smi-spec.io/v1alpha4"}"#;
        let stored = BTreeMap::from([(key.clone(), entry(reordered, 7))]);
        let planned = plan(vec![object.clone()], &stored, &keys);
        assert_eq!(planned[0].change, Change::Unchanged);
        assert!(planned[0].write().is_none());

        let stored = BTreeMap::from([(key.clone(), entry(&split(90).to_string(), 7))]);
        let planned = plan(vec![object], &stored, &keys);
        assert_eq!(planned[0].verb(), "configured");
        assert_eq!(planned[0].write().unwrap().revision, 7);
        assert_eq!(
            planned[0].line(true),
            "trafficsplit.split.smi-spec.io shop/books configured (dry run)"
        );
        let diff = planned[0].diff();
        assert!(
            diff.contains(&"-        \"weight\": 90".to_owned()),
            "{diff:#?}"
        );
        assert!(
            diff.contains(&"+        \"weight\": 10".to_owned()),
            "{diff:#?}"
        );
    }

    #[test]
    fn a_missing_or_empty_namespace_is_default_as_the_loader_reads_it() {
        let mut value = split(1);
        value["metadata"] = serde_json::json!({"name": "books"});
        assert_eq!(Object::new(value.clone()).unwrap().namespace, "default");
        value["metadata"]["namespace"] = "".into();
        assert_eq!(Object::new(value).unwrap().namespace, "default");
    }
}
