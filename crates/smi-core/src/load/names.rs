//! Kubernetes name rules for what a resource names: a name that Kubernetes would refuse cannot
//! reach policy (the mesh derives certificate names and registry keys from these).

use super::diagnostic::Reporter;
use crate::identity::NameKind;

/// Reports `name` at `field` unless it has the shape `kind`; `true` when it has.
pub(crate) fn check(
    name: &str,
    kind: NameKind,
    field: impl FnOnce() -> String,
    r: &mut Reporter<'_>,
) -> bool {
    let ok = kind.admits(name);
    if !ok {
        r.error(field(), format!("{name:?} is not a valid {kind}"));
    }
    ok
}

#[cfg(test)]
mod tests {
    use crate::{Format, load_str};

    fn errors(yaml: &str) -> Vec<String> {
        load_str("p.yaml", yaml, Format::Yaml)
            .errors()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn names_kubernetes_would_refuse_are_errors_at_their_field() {
        let target = |dest_ns: &str, source: &str| {
            format!(
                "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {{name: t, namespace: {dest_ns}}}\nspec:\n  destination: {{kind: ServiceAccount, name: web, namespace: {dest_ns}}}\n  sources: [{{kind: ServiceAccount, name: {source}, namespace: shop}}]\n  rules: [{{kind: HTTPRouteGroup, name: g}}]\n"
            )
        };
        assert!(errors(&target("shop", "buyer.v2")).is_empty());
        let bad = errors(&target("shop.evil", "buyer"));
        assert!(
            bad.iter()
                .any(|e| e.contains("metadata.namespace") && e.contains("DNS-1123 label")),
            "{bad:?}"
        );
        let bad = errors(&target("shop", "Buyer"));
        assert!(
            bad.iter().any(|e| e.contains("spec.sources[0].name")),
            "{bad:?}"
        );
        let split = "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: s, namespace: shop}\nspec:\n  service: web\n  backends: [{service: web-v1.shop.svc.x, weight: 1}]\n";
        let bad = errors(split);
        assert!(
            bad.iter().any(|e| e.contains("spec.backends[0].service")),
            "{bad:?}"
        );
    }
}
