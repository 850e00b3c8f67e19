//! A source's documents loaded origin by origin, the way `kubectl apply` applies manifests: each
//! origin (a file, an object) is loaded on its own, one with errors keeps contributing its last
//! good resources (or nothing, if it never loaded), and every other origin applies. The results
//! are merged in one [`Loader`], so that duplicates across origins are replaced as a single load
//! would replace them.
//!
//! Each origin's content is kept with its result, so an unchanged one is not parsed again.

use std::collections::HashMap;

use smi_core::load::{Diagnostic, Loaded, Loader};

use super::document::{add_document, unreadable};
use crate::traits::{Content, PolicyDocument};

/// The last load of every origin of a source.
#[derive(Debug, Default)]
pub struct PerOrigin {
    origins: HashMap<String, OriginLoad>,
}

#[derive(Debug, Default)]
struct OriginLoad {
    /// The content last loaded; `None` if it could not be read.
    content: Option<Content>,
    /// The errors that content loaded with; empty when it loaded cleanly into `last_good`.
    errors: Vec<Diagnostic>,
    /// The newest load of this origin without errors.
    last_good: Option<Loaded>,
}

/// What a source contributes now.
#[derive(Debug, Default)]
pub struct Merged {
    /// Every contribution merged: no errors, the origins' warnings and cross-origin duplicates.
    pub loaded: Loaded,
    /// Origins with errors, in the source's order.
    pub failing: Vec<Failing>,
    /// Origins parsed by this refresh: new or changed ones. The others' results were kept.
    pub parsed: usize,
}

/// An origin whose newest version does not load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failing {
    pub origin: String,
    pub errors: Vec<Diagnostic>,
    /// Its last good resources serve in its place; otherwise it contributes nothing.
    pub serving_last_good: bool,
}

impl PerOrigin {
    /// Loads what changed among `documents` (the source's whole list, in merge order) and
    /// merges every origin's contribution. Origins no longer listed are forgotten.
    pub fn refresh(&mut self, documents: Vec<PolicyDocument>) -> Merged {
        let mut previous = std::mem::take(&mut self.origins);
        let mut merged = Loader::new();
        let mut failing = Vec::new();
        let mut parsed = 0;
        for document in documents {
            let mut load = previous.remove(&document.origin).unwrap_or_default();
            let origin = document.origin.clone();
            parsed += usize::from(load.refresh(document));
            if let Some(good) = &load.last_good {
                merged.add_loaded(good.clone());
            }
            if !load.errors.is_empty() {
                failing.push(Failing {
                    origin: origin.clone(),
                    errors: load.errors.clone(),
                    serving_last_good: load.last_good.is_some(),
                });
            }
            self.origins.insert(origin, load);
        }
        Merged {
            loaded: merged.finish(),
            failing,
            parsed,
        }
    }
}

impl OriginLoad {
    /// Loads the document if its content changed. Returns whether it was parsed.
    fn refresh(&mut self, document: PolicyDocument) -> bool {
        if let Content::Unreadable(why) = &document.content {
            self.content = None;
            self.errors = vec![unreadable(&document.origin, why)];
            return false;
        }
        if self.content.as_ref() == Some(&document.content) {
            return false;
        }
        let mut loader = Loader::new();
        add_document(&mut loader, &document);
        let loaded = loader.finish();
        self.content = Some(document.content);
        if loaded.is_valid() {
            self.errors.clear();
            self.last_good = Some(loaded);
        } else {
            self.errors = loaded.errors().cloned().collect();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use smi_core::Format;

    use super::*;

    fn text(origin: &str, text: &str) -> PolicyDocument {
        PolicyDocument {
            origin: origin.into(),
            content: Content::Text {
                bytes: text.as_bytes().to_vec(),
                format: Format::Yaml,
            },
        }
    }

    const SPLIT: &str = "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: canary, namespace: shop}\nspec: {service: web, backends: [{service: web-v1, weight: 1}]}\n";

    #[test]
    fn only_new_and_changed_origins_are_parsed_again() {
        let a = text("a.yaml", "apiVersion: v1\nkind: ConfigMap\n");
        let b = text("b.yaml", "apiVersion: v1\nkind: Service\n");
        let mut origins = PerOrigin::default();
        assert_eq!(origins.refresh(vec![a.clone(), b]).parsed, 2);
        let b = text("b.yaml", "apiVersion: v1\nkind: Service\n");
        let cached = origins.refresh(vec![a.clone(), b]);
        assert_eq!((cached.parsed, cached.loaded.skipped), (0, 2));

        let b = text(
            "b.yaml",
            "apiVersion: v1\nkind: Service\n---\nkind: Secret\napiVersion: v1\n",
        );
        let c = text("c.yaml", "kind: [");
        let changed = origins.refresh(vec![a.clone(), b.clone(), c.clone()]);
        assert_eq!((changed.parsed, changed.loaded.skipped), (2, 3));
        assert_eq!(changed.failing.len(), 1);
        // A broken origin that did not change stays reported, without being parsed again.
        let cached = origins.refresh(vec![a, b, c]);
        assert_eq!((cached.parsed, cached.failing), (0, changed.failing));
    }

    #[test]
    fn a_value_origin_keeps_its_last_good_version_like_a_file() {
        let value = |weight: i64| PolicyDocument {
            origin: "kubernetes:TrafficSplit/shop/canary".into(),
            content: Content::Value(serde_json::json!({
                "apiVersion": "split.smi-spec.io/v1alpha4",
                "kind": "TrafficSplit",
                "metadata": {"name": "canary", "namespace": "shop"},
                "spec": {"service": "web", "backends": [{"service": "web-v1", "weight": weight}]},
            })),
        };
        let mut origins = PerOrigin::default();
        let good = origins.refresh(vec![value(1)]);
        assert_eq!(good.loaded.policy.splits.len(), 1);
        let broken = origins.refresh(vec![value(-1), text("file.yaml", SPLIT)]);
        assert_eq!(broken.failing.len(), 1);
        assert_eq!(
            broken.failing[0].origin,
            "kubernetes:TrafficSplit/shop/canary"
        );
        assert!(broken.failing[0].serving_last_good);
        assert!(
            broken.failing[0].errors[0]
                .to_string()
                .starts_with("kubernetes:TrafficSplit/shop/canary:doc 1: ")
        );
        // The file defines the same split later in the list: it replaces the object's.
        assert_eq!(broken.loaded.policy.splits.len(), 1);
        assert_eq!(
            &*broken.loaded.policy.splits[0].meta.origin.source,
            "file.yaml"
        );
        // Gone from the list: forgotten.
        assert!(origins.refresh(Vec::new()).loaded.policy.is_empty());
    }
}
