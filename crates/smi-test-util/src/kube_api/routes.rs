//! Request paths and queries, parsed as the real server's: discovery documents, and
//! `/api/v1/...` or `/apis/<group>/<version>/...` resource paths, namespaced
//! (`namespaces/<ns>/<plural>[/<name>[/<subresource>]]`) or not.

use std::collections::HashMap;

use super::resources::Registry;

/// What a path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Route {
    /// `/version`
    Version,
    /// `/healthz`, `/livez`, `/readyz`
    Health,
    /// `/api`
    ApiVersions,
    /// `/apis`
    Groups,
    /// `/apis/<group>`
    Group(String),
    /// `/api/v1`, `/apis/<group>/<version>`
    Resources {
        group: String,
        version: String,
    },
    Resource(Target),
    Unknown,
}

/// A resource path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Target {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

pub(super) fn route(path: &str, registry: &Registry) -> Route {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "livez" | "readyz", ..] => Route::Health,
        ["api"] => Route::ApiVersions,
        ["api", version] => resources("", version),
        ["api", version, rest @ ..] => target("", version, rest, registry),
        ["apis"] => Route::Groups,
        ["apis", group] => Route::Group((*group).to_owned()),
        ["apis", group, version] => resources(group, version),
        ["apis", group, version, rest @ ..] => target(group, version, rest, registry),
        _ => Route::Unknown,
    }
}

fn resources(group: &str, version: &str) -> Route {
    Route::Resources {
        group: group.to_owned(),
        version: version.to_owned(),
    }
}

fn target(group: &str, version: &str, rest: &[&str], registry: &Registry) -> Route {
    let namespaced = match rest {
        ["namespaces", _, plural, ..] => registry
            .find(group, version, plural)
            .is_some_and(|rt| rt.namespaced),
        _ => false,
    };
    let (namespace, rest) = if namespaced {
        (Some(rest[1].to_owned()), &rest[2..])
    } else {
        (None, rest)
    };
    let (plural, name, subresource) = match rest {
        [plural] => (plural, None, None),
        [plural, name] => (plural, Some(name), None),
        [plural, name, sub] => (plural, Some(name), Some(sub)),
        _ => return Route::Unknown,
    };
    Route::Resource(Target {
        group: group.to_owned(),
        version: version.to_owned(),
        plural: (*plural).to_owned(),
        namespace,
        name: name.map(|n| (*n).to_owned()),
        subresource: subresource.map(|s| (*s).to_owned()),
    })
}

/// The query's parameters, percent-decoded (the last of a repeated one wins).
pub(super) fn query(query: Option<&str>) -> HashMap<String, String> {
    let pairs = query.unwrap_or("").split('&').filter(|p| !p.is_empty());
    pairs
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str) -> Target {
        match route(path, &Registry::new([])) {
            Route::Resource(t) => t,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn resource_paths_name_namespace_plural_name_and_subresource() {
        let t = target("/api/v1/namespaces/shop/pods/web-1/status");
        assert_eq!(t.namespace.as_deref(), Some("shop"));
        assert_eq!(
            (
                t.plural.as_str(),
                t.name.as_deref(),
                t.subresource.as_deref()
            ),
            ("pods", Some("web-1"), Some("status"))
        );
        let ns = target("/api/v1/namespaces/shop");
        assert_eq!(
            (ns.namespace, ns.plural.as_str(), ns.name.as_deref()),
            (None, "namespaces", Some("shop"))
        );
        let ns_status = target("/api/v1/namespaces/shop/status");
        assert_eq!(ns_status.subresource.as_deref(), Some("status"));
        let all = target("/apis/discovery.k8s.io/v1/endpointslices");
        assert_eq!(
            (all.group.as_str(), all.namespace, all.name),
            ("discovery.k8s.io", None, None)
        );
        assert_eq!(route("/apis", &Registry::new([])), Route::Groups);
        assert_eq!(
            route("/apis/x.io/v1/a/b/c/d", &Registry::new([])),
            Route::Unknown
        );
    }

    #[test]
    fn queries_are_percent_decoded() {
        let q = query(Some(
            "labelSelector=app%20in%20(a%2Cb)&watch=1&fieldSelector=metadata.name%3Dx&x=%zz&y=%4",
        ));
        assert_eq!(q["labelSelector"], "app in (a,b)");
        assert_eq!(q["fieldSelector"], "metadata.name=x");
        assert_eq!(q["watch"], "1");
        assert_eq!(q["x"], "%zz");
        assert_eq!(q["y"], "%4");
    }
}
