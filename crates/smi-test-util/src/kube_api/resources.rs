//! The resources the server serves: the built-in ones it models, and those its
//! CustomResourceDefinitions define (each `served` version of each), with what discovery says of
//! them and how the served versions rank (Kubernetes version priority).

use std::cmp::Ordering;

use serde_json::Value;

use super::builtins::{ALL, builtins};
use super::status::{ApiError, Resource};

/// One resource (group + plural), in all the versions it is served in.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct ResourceType {
    /// "" for the core group.
    pub group: String,
    /// Served versions, highest priority first.
    pub versions: Vec<String>,
    /// The version objects are stored in (custom resources: the CRD's `storage: true` one).
    pub storage: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub verbs: &'static [&'static str],
    /// Has a `status` subresource: writes to the object keep its status, writes to
    /// `/status` change only the status.
    pub status: bool,
    /// DELETE answers the deleted object (pods, namespaces, custom resources) rather than a
    /// `Status`, as the real server's storage for those kinds does.
    pub returns_deleted: bool,
    /// Field selector labels besides `metadata.name` and `metadata.namespace`.
    pub fields: Vec<String>,
    pub short_names: Vec<String>,
    /// Defined by a CustomResourceDefinition.
    pub custom: bool,
}

// === impl ResourceType ===

impl ResourceType {
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_owned()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    pub fn resource(&self) -> Resource<'_> {
        Resource {
            group: &self.group,
            plural: &self.plural,
        }
    }

    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    pub fn allows(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }
}

/// The resource a CustomResourceDefinition defines, or what is invalid about it (as a 422).
pub(super) fn custom(crd: &Value) -> Result<ResourceType, ApiError> {
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let invalid = |why: &str| {
        ApiError::invalid(
            "CustomResourceDefinition",
            "apiextensions.k8s.io",
            name,
            why,
        )
    };
    let text = |path: &str| crd.pointer(path).and_then(Value::as_str).unwrap_or("");
    let (group, plural, kind) = (
        text("/spec/group"),
        text("/spec/names/plural"),
        text("/spec/names/kind"),
    );
    if group.is_empty() || !group.contains('.') {
        return Err(invalid(
            "spec.group: Invalid value: should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() || kind.is_empty() {
        return Err(invalid(
            "spec.names: Required value: plural and kind are required",
        ));
    }
    if name != format!("{plural}.{group}") {
        return Err(invalid(
            "metadata.name: Invalid value: must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let namespaced = match text("/spec/scope") {
        "Namespaced" => true,
        "Cluster" => false,
        _ => {
            return Err(invalid(
                "spec.scope: Unsupported value: supported values: \"Cluster\", \"Namespaced\"",
            ));
        }
    };
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let storage: Vec<&Value> = versions.iter().filter(|v| v["storage"] == true).collect();
    if storage.len() != 1 {
        return Err(invalid(
            "spec.versions: Invalid value: must have exactly one version marked as storage version",
        ));
    }
    let mut served: Vec<String> = versions
        .iter()
        .filter(|v| v["served"] == true)
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect();
    served.sort_by(|a, b| priority(a, b));
    let fields = versions
        .iter()
        .filter_map(|v| v["selectableFields"].as_array())
        .flatten()
        .filter_map(|f| f["jsonPath"].as_str())
        .map(|p| p.trim_start_matches('.').to_owned())
        .collect();
    let strings = |path: &str| -> Vec<String> {
        let list = crd.pointer(path).and_then(Value::as_array);
        list.into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    let singular = match text("/spec/names/singular") {
        "" => kind.to_ascii_lowercase(),
        s => s.to_owned(),
    };
    Ok(ResourceType {
        group: group.to_owned(),
        versions: served,
        storage: storage[0]["name"].as_str().unwrap_or("").to_owned(),
        plural: plural.to_owned(),
        singular,
        kind: kind.to_owned(),
        namespaced,
        verbs: ALL,
        status: storage[0].pointer("/subresources/status").is_some(),
        returns_deleted: true,
        fields,
        short_names: strings("/spec/names/shortNames"),
        custom: true,
    })
}

/// Kubernetes version priority, highest first: GA before beta before alpha, then by major and
/// minor number, descending (v2 > v1 > v1beta2 > v1beta1 > v1alpha1); versions not of that shape
/// come last, in lexical order.
pub(super) fn priority(a: &str, b: &str) -> Ordering {
    fn key(v: &str) -> Result<(u8, std::cmp::Reverse<u64>, std::cmp::Reverse<u64>), &str> {
        let parse = || -> Option<(u8, u64, u64)> {
            let rest = v.strip_prefix('v')?;
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let major = rest[..end].parse().ok()?;
            match &rest[end..] {
                "" => Some((0, major, 0)),
                tail => {
                    let (class, minor) = if let Some(m) = tail.strip_prefix("beta") {
                        (1, m)
                    } else {
                        (2, tail.strip_prefix("alpha")?)
                    };
                    Some((class, major, minor.parse().ok()?))
                }
            }
        };
        let (class, major, minor) = parse().ok_or(v)?;
        Ok((class, std::cmp::Reverse(major), std::cmp::Reverse(minor)))
    }
    match (key(a), key(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(a), Err(b)) => a.cmp(b),
    }
}

/// Everything served: the built-in resources, then those of the CustomResourceDefinitions.
#[derive(Clone, Debug)]
pub(super) struct Registry {
    types: Vec<ResourceType>,
}

// === impl Registry ===

impl Registry {
    /// The built-ins and the resources of `crds` (stored CRDs; invalid ones were refused when
    /// written, and are skipped here).
    pub fn new<'a>(crds: impl IntoIterator<Item = &'a Value>) -> Registry {
        let mut types = builtins();
        types.extend(crds.into_iter().filter_map(|crd| custom(crd).ok()));
        Registry { types }
    }

    /// The resource `plural` of `group`, if it is served in `version`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.plural == plural && t.serves(version))
    }

    /// The resource of `api_version` whose kind or plural is `kind_or_plural`.
    pub fn by_kind(&self, api_version: &str, kind_or_plural: &str) -> Option<&ResourceType> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        self.types.iter().find(|t| {
            t.group == group
                && t.serves(version)
                && (t.kind == kind_or_plural || t.plural == kind_or_plural)
        })
    }

    /// The resource (in any version) of `group` named `plural`.
    pub fn resource(&self, group: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.plural == plural)
    }

    /// The resources served in `group`/`version`.
    pub fn in_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a ResourceType> + 'a {
        self.types
            .iter()
            .filter(move |t| t.group == group && t.serves(version))
    }

    /// Each named group (not the core one) with its served versions, highest priority first;
    /// built-in groups first, then custom ones by name.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.types.iter().filter(|t| !t.group.is_empty()) {
            let at = match groups.iter().position(|(g, _)| *g == t.group) {
                Some(at) => at,
                None => {
                    groups.push((t.group.clone(), Vec::new()));
                    groups.len() - 1
                }
            };
            for v in &t.versions {
                if !groups[at].1.contains(v) {
                    groups[at].1.push(v.clone());
                }
            }
        }
        for (_, versions) in &mut groups {
            versions.sort_by(|a, b| priority(a, b));
        }
        groups.retain(|(_, versions)| !versions.is_empty());
        groups
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn versions_rank_by_kubernetes_priority() {
        let mut versions = vec![
            "v1alpha1",
            "v1",
            "foo",
            "v1beta1",
            "v2",
            "v11alpha2",
            "v1beta2",
            "v1alpha2",
            "bar",
            "v12",
        ];
        versions.sort_by(|a, b| priority(a, b));
        assert_eq!(
            versions,
            [
                "v12",
                "v2",
                "v1",
                "v1beta2",
                "v1beta1",
                "v11alpha2",
                "v1alpha2",
                "v1alpha1",
                "bar",
                "foo"
            ]
        );
    }

    fn crd(name: &str, versions: Value) -> Value {
        json!({"metadata": {"name": name}, "spec": {"group": "split.smi-spec.io", "scope": "Namespaced",
               "names": {"plural": "trafficsplits", "kind": "TrafficSplit"}, "versions": versions}})
    }

    #[test]
    fn a_crd_serves_its_served_versions_highest_first() {
        let versions = json!([
            {"name": "v1alpha2", "served": true, "storage": false},
            {"name": "v1alpha4", "served": true, "storage": true, "subresources": {"status": {}}},
            {"name": "v1alpha1", "served": false, "storage": false},
        ]);
        let t = custom(&crd("trafficsplits.split.smi-spec.io", versions)).expect("valid");
        assert_eq!(t.versions, ["v1alpha4", "v1alpha2"]);
        assert_eq!(
            (t.singular.as_str(), t.namespaced, t.status),
            ("trafficsplit", true, true)
        );
    }

    #[test]
    fn invalid_crds_are_refused() {
        let one = json!([{"name": "v1", "served": true, "storage": true}]);
        let two = json!([{"name": "v1", "served": true, "storage": true}, {"name": "v2", "served": true, "storage": true}]);
        for (name, versions, why) in [
            (
                "trafficsplits.split.smi-spec.io",
                two,
                "exactly one version marked as storage",
            ),
            ("splits.split.smi-spec.io", one, "metadata.name"),
        ] {
            let e = custom(&crd(name, versions)).expect_err(why);
            assert_eq!(e.code, 422);
            assert!(e.message.contains(why), "{}", e.message);
        }
    }
}
