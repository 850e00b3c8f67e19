//! Loading SMI resources from YAML or JSON text into the normalized model, with diagnostics.
//!
//! The loader does no I/O: callers hand it `(source name, text)` pairs (the control service and
//! `smictl` read files and directories in `smi_control::source`).

mod access;
mod diagnostic;
mod document;
pub mod limits;
mod names;
mod quantity;
mod specs;
mod split;
mod value;
mod wire;

pub use diagnostic::{Diagnostic, ResourceId, Severity};
pub use document::smi_objects;
pub use value::load_value;

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::PolicySet;

/// Text formats the loader reads. YAML also reads JSON; the JSON reader gives JSON-style errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    /// JSON for `.json` files, YAML for everything else.
    pub fn from_path(path: &str) -> Format {
        if path.to_ascii_lowercase().ends_with(".json") {
            Format::Json
        } else {
            Format::Yaml
        }
    }
}

/// Accumulates resources from any number of sources.
#[derive(Debug, Default)]
pub struct Loader {
    policy: PolicySet,
    diagnostics: Vec<Diagnostic>,
    skipped: usize,
}

/// What a load produced: the resources, and every error and warning found on the way.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub policy: PolicySet,
    pub diagnostics: Vec<Diagnostic>,
    /// Documents that were not SMI policy (Deployments, Services, ...) and were skipped.
    pub skipped: usize,
}

impl Loaded {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| !d.is_error())
    }

    pub fn is_valid(&self) -> bool {
        self.errors().next().is_none()
    }
}

impl Loader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads every document of `text`. `source` names it in diagnostics (usually the file path).
    /// A text over the [`limits`] is refused whole, with one error, before it is parsed.
    pub fn add_text(&mut self, source: &str, text: &str, format: Format) {
        if let Err(exceeded) = limits::check(text, format) {
            self.diagnostics.push(exceeded.diagnostic(source));
            return;
        }
        let source: Arc<str> = Arc::from(source);
        let mut reader = document::DocumentReader {
            source,
            policy: &mut self.policy,
            diagnostics: &mut self.diagnostics,
            skipped: &mut self.skipped,
        };
        reader.read(text, format);
    }

    /// Records a problem found outside the text, such as an unreadable file.
    pub fn add_diagnostic(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    /// Adds resources loaded earlier, as if their text came next: [`Loader::finish`] dedupes them
    /// with the rest. This is how per-file loads are merged.
    pub fn add_policy(&mut self, policy: PolicySet) {
        let PolicySet {
            targets,
            route_groups,
            l4_routes,
            splits,
        } = policy;
        self.policy.targets.extend(targets);
        self.policy.route_groups.extend(route_groups);
        self.policy.l4_routes.extend(l4_routes);
        self.policy.splits.extend(splits);
    }

    /// Adds an earlier load whole: its resources, its diagnostics and its skipped documents.
    pub fn add_loaded(&mut self, loaded: Loaded) {
        self.add_policy(loaded.policy);
        self.diagnostics.extend(loaded.diagnostics);
        self.skipped += loaded.skipped;
    }

    /// Ends the load. Resources with the same kind, namespace and name replace earlier ones (as
    /// `kubectl apply` would), with a warning naming both places.
    pub fn finish(mut self) -> Loaded {
        let diagnostics = &mut self.diagnostics;
        dedupe(
            &mut self.policy.targets,
            |t| (&t.meta, "TrafficTarget"),
            diagnostics,
        );
        dedupe(
            &mut self.policy.route_groups,
            |g| (&g.meta, "HTTPRouteGroup"),
            diagnostics,
        );
        dedupe(
            &mut self.policy.l4_routes,
            |r| (&r.meta, r.protocol.route_kind().kind_name()),
            diagnostics,
        );
        dedupe(
            &mut self.policy.splits,
            |s| (&s.meta, "TrafficSplit"),
            diagnostics,
        );
        Loaded {
            policy: self.policy,
            diagnostics: self.diagnostics,
            skipped: self.skipped,
        }
    }
}

/// Convenience: load one text.
pub fn load_str(source: &str, text: &str, format: Format) -> Loaded {
    let mut loader = Loader::new();
    loader.add_text(source, text, format);
    loader.finish()
}

/// `meta_of` gives each item's metadata and kind (TCPRoute and UDPRoute share a vector but not a
/// name space).
fn dedupe<T>(
    items: &mut Vec<T>,
    meta_of: impl Fn(&T) -> (&crate::model::Meta, &'static str),
    diagnostics: &mut Vec<Diagnostic>,
) {
    let key = |item: &T| {
        let (m, kind) = meta_of(item);
        (kind, m.namespace.clone(), m.name.clone())
    };
    let mut last: HashMap<_, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(prev) = last.insert(key(item), i) {
            let ((earlier, _), (later, kind)) = (meta_of(&items[prev]), meta_of(item));
            diagnostics.push(Diagnostic {
                severity: Severity::Warning,
                origin: Some(later.origin.clone()),
                resource: Some(ResourceId {
                    kind: kind.to_owned(),
                    namespace: Some(later.namespace.clone()),
                    name: Some(later.name.clone()),
                }),
                field: None,
                message: format!(
                    "duplicate name; this definition replaces the one at {}",
                    earlier.origin
                ),
            });
        }
    }
    if last.len() == items.len() {
        return;
    }
    let mut index = 0;
    items.retain(|item| {
        let keep = last.get(&key(item)) == Some(&index);
        index += 1;
        keep
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCESS: &str =
        include_str!("../../../../examples/bookstore/policy/bookstore-access.yaml");
    const SPLIT: &str = include_str!("../../../../examples/bookstore/policy/bookstore-split.yaml");

    fn split(weight: u32) -> String {
        SPLIT.replace(
            "weight: 50\n  - service: bookstore-v2",
            &format!("weight: {weight}\n  - service: bookstore-v2"),
        )
    }

    #[test]
    fn merging_per_source_loads_equals_loading_the_sources_together() {
        let sources = [
            ("a.yaml", ACCESS.to_owned()),
            ("b.yaml", split(10)),
            ("c.yaml", split(90)),
        ];
        let mut together = Loader::new();
        let mut merged = Loader::new();
        for (name, text) in &sources {
            together.add_text(name, text, Format::Yaml);
            merged.add_loaded(load_str(name, text, Format::Yaml));
        }
        let (together, merged) = (together.finish(), merged.finish());
        assert_eq!(merged.policy, together.policy);
        assert_eq!(merged.diagnostics, together.diagnostics);
        assert_eq!(merged.skipped, together.skipped);
        assert_eq!(merged.policy.len(), 3);
    }

    #[test]
    fn a_later_source_replaces_a_duplicate_with_a_warning_naming_both() {
        let mut loader = Loader::new();
        loader.add_policy(load_str("b.yaml", &split(10), Format::Yaml).policy);
        loader.add_policy(load_str("c.yaml", &split(90), Format::Yaml).policy);
        let loaded = loader.finish();
        assert_eq!(loaded.policy.splits.len(), 1);
        assert_eq!(&*loaded.policy.splits[0].meta.origin.source, "c.yaml");
        let warnings: Vec<String> = loaded.warnings().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            [
                "c.yaml:doc 1: TrafficSplit bookstore/bookstore-split: duplicate name; this definition replaces the one at b.yaml:doc 1"
            ]
        );
    }
}
