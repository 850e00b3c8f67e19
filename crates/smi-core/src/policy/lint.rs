//! Advice on policy that is valid but probably not what its author meant; `smictl validate`
//! prints it. Kept out of the loader's warnings, which are about reading the files.
//!
//! `pathRegex` is a prefix in SMI (`^(?:re)`, see [`super::PathMatch`]): `/buy-a-book/new`
//! also admits `/buy-a-book/newsletter` and everything under `/buy-a-book/new/`. A pattern that
//! ends in the middle of a path segment is where that surprises people; one that ends with `/`
//! (a subtree), `$` (one path) or a wildcard says what it means.

use super::PathMatch;
use crate::load::{Diagnostic, ResourceId, Severity};
use crate::model::PolicySet;

/// One warning per `pathRegex` that, matched as a prefix, admits longer names than it spells.
pub fn broad_prefixes(policy: &PolicySet, path_match: PathMatch) -> Vec<Diagnostic> {
    if path_match == PathMatch::Full {
        return Vec::new();
    }
    let mut out = Vec::new();
    for group in &policy.route_groups {
        for (i, m) in group.matches.iter().enumerate() {
            let Some(pattern) = m.path_regex.as_deref() else {
                continue;
            };
            if !ends_mid_segment(pattern) {
                continue;
            }
            out.push(Diagnostic {
                severity: Severity::Warning,
                origin: Some(group.meta.origin.clone()),
                resource: Some(ResourceId {
                    kind: "HTTPRouteGroup".to_owned(),
                    namespace: Some(group.meta.namespace.clone()),
                    name: Some(group.meta.name.clone()),
                }),
                field: Some(format!("spec.matches[{i}].pathRegex")),
                message: format!(
                    "{pattern:?} is matched as a prefix (SMI): it also admits {pattern}<anything>, such as {pattern}x and {pattern}/x; end it with $ for this path only, or with / for the paths under it"
                ),
            });
        }
    }
    out
}

/// Does a prefix pattern stop inside a path segment (its last character a name character)?
fn ends_mid_segment(pattern: &str) -> bool {
    pattern
        .chars()
        .last()
        .is_some_and(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '~'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Format, load_str};

    fn warned(pattern: &str, mode: PathMatch) -> bool {
        let yaml = format!(
            "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {{name: g, namespace: shop}}\nspec:\n  matches: [{{name: m, pathRegex: '{pattern}'}}]\n"
        );
        let loaded = load_str("g.yaml", &yaml, Format::Yaml);
        assert!(loaded.is_valid());
        let warnings = broad_prefixes(&loaded.policy, mode);
        if let Some(w) = warnings.first() {
            assert!(w.to_string().contains("spec.matches[0].pathRegex"), "{w}");
        }
        !warnings.is_empty()
    }

    #[test]
    fn prefixes_that_end_inside_a_segment_are_flagged() {
        assert!(warned("/buy-a-book/new", PathMatch::Prefix));
        assert!(!warned("/api/v[12]", PathMatch::Prefix));
        assert!(warned("/metrics", PathMatch::Prefix));
        for fine in ["/buy-a-book/new$", "/api/", "/api/.*", "/", ".*"] {
            assert!(!warned(fine, PathMatch::Prefix), "{fine}");
        }
        assert!(!warned("/buy-a-book/new", PathMatch::Full));
    }
}
