//! Loading SMI resources from YAML or JSON text into the normalized model, with diagnostics.
//!
//! The loader does no I/O: callers hand it `(source name, text)` pairs (the control service and
//! `smictl` read files and directories in `smi_control::source`).

mod access;
mod diagnostic;
mod document;
mod quantity;
mod specs;
mod split;
mod wire;

pub use diagnostic::{Diagnostic, ResourceId, Severity};

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
    pub fn add_text(&mut self, source: &str, text: &str, format: Format) {
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
