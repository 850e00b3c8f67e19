//! What `smictl top` asks the TrafficMetrics API for: the path of each view.

use clap::ValueEnum;

use crate::telemetry::api_types::BASE_PATH;
use crate::telemetry::go_duration;

/// What to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TopKind {
    /// Each deployment's inbound traffic, as its servers measured it.
    #[value(alias = "deployment", alias = "deploy")]
    Deployments,
    /// Each pod's inbound traffic.
    #[value(alias = "pod", alias = "po")]
    Pods,
    /// Each TrafficSplit backend: its weight and its actual share of the split's requests.
    #[value(alias = "trafficsplit", alias = "ts")]
    Trafficsplits,
    /// One resource's traffic per peer and direction (KIND/NAME: deployment/web, pod/web-0,
    /// namespace/shop).
    #[value(alias = "edge")]
    Edges,
}

/// How the answer is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// Resources' own metrics; with a NAMESPACE column when over every namespace.
    Resources {
        all_namespaces: bool,
    },
    Splits {
        all_namespaces: bool,
    },
    Edges,
}

/// A request: its path on the admin API and how to show its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub path: String,
    pub view: View,
}

impl Target {
    /// The request for `kind` (and `name`, in `namespace`) over `window`.
    pub fn new(
        kind: TopKind,
        name: Option<&str>,
        namespace: Option<&str>,
        window: &str,
    ) -> Result<Self, String> {
        go_duration::parse(window).map_err(|e| format!("--window: {e}"))?;
        if let Some(ns) = namespace {
            check_name(ns, "-n")?;
        }
        let all_namespaces = namespace.is_none();
        let plural = match kind {
            TopKind::Deployments => "deployments",
            TopKind::Pods => "pods",
            TopKind::Trafficsplits => "trafficsplits",
            TopKind::Edges => return Self::edges(name, namespace, window),
        };
        let path = match (namespace, name) {
            (None, None) => format!("/{plural}"),
            (Some(ns), None) => format!("/namespaces/{ns}/{plural}"),
            (Some(ns), Some(name)) => {
                check_name(name, "NAME")?;
                format!("/namespaces/{ns}/{plural}/{name}")
            }
            (None, Some(name)) => {
                return Err(format!(
                    "{plural} {name:?}: give its namespace with -n NAMESPACE"
                ));
            }
        };
        let view = if kind == TopKind::Trafficsplits {
            View::Splits { all_namespaces }
        } else {
            View::Resources { all_namespaces }
        };
        Ok(Self {
            path: with_window(&path, window),
            view,
        })
    }

    fn edges(name: Option<&str>, namespace: Option<&str>, window: &str) -> Result<Self, String> {
        let usage = "edges of what? give KIND/NAME: deployment/NAME, pod/NAME (both with -n NAMESPACE) or namespace/NAME";
        let (kind, object) = name.and_then(|n| n.split_once('/')).ok_or(usage)?;
        check_name(object, "NAME")?;
        let path = match kind {
            "namespace" | "namespaces" | "ns" => format!("/namespaces/{object}/edges"),
            "deployment" | "deployments" | "deploy" | "pod" | "pods" | "po" => {
                let plural = if kind.starts_with('d') {
                    "deployments"
                } else {
                    "pods"
                };
                let ns = namespace.ok_or_else(|| {
                    format!("{kind}/{object}: give its namespace with -n NAMESPACE")
                })?;
                format!("/namespaces/{ns}/{plural}/{object}/edges")
            }
            other => return Err(format!("{other:?}: {usage}")),
        };
        Ok(Self {
            path: with_window(&path, window),
            view: View::Edges,
        })
    }
}

fn with_window(path: &str, window: &str) -> String {
    format!("{BASE_PATH}{path}?t={}", encode(window))
}

/// A Kubernetes object name (DNS-1123 subdomain): all a path segment here needs to be.
fn check_name(name: &str, what: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let ok = !name.is_empty()
        && name.len() <= 253
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {:?} is not a Kubernetes name (lower-case letters, digits, '-' and '.')",
            super::super::escape::escape(name)
        ))
    }
}

/// Percent-encodes all but letters, digits and `.` (a window may be `250µs`).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'.' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(kind: TopKind, name: Option<&str>, ns: Option<&str>) -> Result<String, String> {
        Target::new(kind, name, ns, "30s").map(|t| t.path)
    }

    #[test]
    fn each_view_has_its_path() {
        let base = BASE_PATH;
        assert_eq!(
            path(TopKind::Deployments, None, None).unwrap(),
            format!("{base}/deployments?t=30s")
        );
        assert_eq!(
            path(TopKind::Pods, None, Some("shop")).unwrap(),
            format!("{base}/namespaces/shop/pods?t=30s")
        );
        assert_eq!(
            path(TopKind::Trafficsplits, Some("split"), Some("shop")).unwrap(),
            format!("{base}/namespaces/shop/trafficsplits/split?t=30s")
        );
        assert_eq!(
            path(TopKind::Edges, Some("deploy/web"), Some("shop")).unwrap(),
            format!("{base}/namespaces/shop/deployments/web/edges?t=30s")
        );
        assert_eq!(
            path(TopKind::Edges, Some("ns/shop"), None).unwrap(),
            format!("{base}/namespaces/shop/edges?t=30s")
        );
        let micro = Target::new(TopKind::Pods, None, None, "250µs").unwrap();
        assert!(micro.path.ends_with("?t=250%C2%B5s"), "{}", micro.path);
    }

    #[test]
    fn what_cannot_be_asked_says_why() {
        assert!(
            path(TopKind::Pods, Some("web-0"), None)
                .unwrap_err()
                .contains("-n NAMESPACE")
        );
        assert!(
            path(TopKind::Edges, None, Some("shop"))
                .unwrap_err()
                .contains("KIND/NAME")
        );
        assert!(
            path(TopKind::Edges, Some("deployment/web"), None)
                .unwrap_err()
                .contains("-n")
        );
        assert!(
            path(TopKind::Edges, Some("service/web"), Some("a"))
                .unwrap_err()
                .contains("KIND/NAME")
        );
        assert!(
            path(TopKind::Pods, Some("../x"), Some("a"))
                .unwrap_err()
                .contains("not a Kubernetes name")
        );
        assert!(path(TopKind::Pods, None, Some("a?b")).is_err());
        let window = Target::new(TopKind::Pods, None, None, "soon").unwrap_err();
        assert!(window.starts_with("--window: "), "{window}");
    }
}
