//! Whether the policy in etcd still loads with a change made: every value, the changed ones as
//! they would be written, loaded together as the control loads them ([`EtcdPolicy`]: each key
//! one origin, `etcd:<key>`), then compiled for the warnings that only the whole shows.
//!
//! [`EtcdPolicy`]: crate::etcd::EtcdPolicy

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use smi_core::load::{Loaded, Loader};
use smi_core::{Options, Snapshot};

use crate::etcd::{Entry, Etcd};
use crate::source::add_document;
use crate::traits::{Content, PolicyDocument};

/// Policy keys and their values.
pub type Values = BTreeMap<String, Arc<[u8]>>;

/// What a change would do to the policy.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Errors of the policy etcd would hold: the change is refused.
    pub errors: Vec<String>,
    /// Warnings of the whole (dangling references, competing splits, broad prefixes) that the
    /// policy had not before the change.
    pub new_warnings: Vec<String>,
}

/// Every policy value in the mirror, with its modification revision.
pub fn stored(etcd: &Etcd) -> BTreeMap<String, Entry> {
    let prefix = etcd.mirror().keys().policy_prefix();
    etcd.mirror().entries(&prefix).into_iter().collect()
}

/// The values of `stored`.
pub fn values(stored: &BTreeMap<String, Entry>) -> Values {
    stored
        .iter()
        .map(|(key, entry)| (key.clone(), entry.value.clone()))
        .collect()
}

pub fn check(before: &Values, after: &Values) -> Verdict {
    let loaded = load(after);
    let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
    if !errors.is_empty() {
        return Verdict {
            errors,
            new_warnings: Vec::new(),
        };
    }
    let had: HashSet<String> = whole_warnings(load(before)).into_iter().collect();
    Verdict {
        errors,
        new_warnings: whole_warnings(loaded)
            .into_iter()
            .filter(|w| !had.contains(w))
            .collect(),
    }
}

/// As [`EtcdPolicy::documents`](crate::etcd::EtcdPolicy) reads them.
fn load(values: &Values) -> Loaded {
    let mut loader = Loader::new();
    for (key, value) in values {
        let document = PolicyDocument {
            origin: format!("etcd:{key}"),
            content: match serde_json::from_slice(value) {
                Ok(value) => Content::Value(value),
                Err(e) => Content::Unreadable(format!("not JSON: {e}")),
            },
        };
        add_document(&mut loader, &document);
    }
    loader.finish()
}

/// What `smictl validate` warns about once the policy has loaded, besides each document's own.
fn whole_warnings(loaded: Loaded) -> Vec<String> {
    let options = Options::default();
    let mut warnings: Vec<String> =
        smi_core::policy::lint::broad_prefixes(&loaded.policy, options.path_match)
            .iter()
            .map(ToString::to_string)
            .collect();
    let snapshot = Snapshot::compile(loaded.policy, options);
    warnings.extend(snapshot.warnings().iter().map(ToString::to_string));
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: &str = r#"{"apiVersion":"access.smi-spec.io/v1alpha3","kind":"TrafficTarget",
        "metadata":{"name":"t","namespace":"shop"},
        "spec":{"destination":{"kind":"ServiceAccount","name":"books","namespace":"shop"},
        "sources":[{"kind":"ServiceAccount","name":"web","namespace":"shop"}],
        "rules":[{"kind":"HTTPRouteGroup","name":"routes","matches":["all"]}]}}"#;
    const ROUTES: &str = r#"{"apiVersion":"specs.smi-spec.io/v1alpha4","kind":"HTTPRouteGroup",
        "metadata":{"name":"routes","namespace":"shop"},
        "spec":{"matches":[{"name":"all","pathRegex":"/books"}]}}"#;

    fn values(entries: &[(&str, &str)]) -> Values {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().into()))
            .collect()
    }

    #[test]
    fn a_change_that_leaves_a_reference_dangling_brings_a_new_warning() {
        let whole = values(&[("/p/policy/t", TARGET), ("/p/policy/r", ROUTES)]);
        let without_routes = values(&[("/p/policy/t", TARGET)]);
        assert_eq!(check(&whole, &whole), Verdict::default());
        let verdict = check(&whole, &without_routes);
        assert!(verdict.errors.is_empty(), "{verdict:?}");
        assert_eq!(verdict.new_warnings.len(), 1, "{verdict:?}");
        assert!(
            verdict.new_warnings[0].starts_with("etcd:/p/policy/t:doc 1: TrafficTarget shop/t"),
            "{verdict:?}"
        );
        // Already there before: not new.
        assert!(
            check(&without_routes, &without_routes)
                .new_warnings
                .is_empty()
        );
    }

    #[test]
    fn a_value_that_does_not_load_is_an_error_naming_its_key() {
        let other_namespace =
            TARGET.replacen(r#""namespace":"shop"},"#, r#""namespace":"web"},"#, 1);
        let after = values(&[
            ("/p/policy/t", &other_namespace),
            ("/p/policy/x", "{not json"),
        ]);
        let verdict = check(&Values::new(), &after);
        assert_eq!(verdict.errors.len(), 2, "{verdict:?}");
        assert!(
            verdict.errors[0].starts_with(
                "etcd:/p/policy/t:doc 1: TrafficTarget web/t: spec.destination.namespace"
            ),
            "{verdict:?}"
        );
        assert!(
            verdict.errors[1].starts_with("etcd:/p/policy/x: not JSON"),
            "{verdict:?}"
        );
    }
}
