//! Splits text into documents and dispatches each by `apiVersion` and `kind`.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::diagnostic::{Diagnostic, Reporter, ResourceId, Severity};
use super::{Format, access, names, specs, split, wire};
use crate::identity::NameKind;
use crate::model::{Meta, Origin, PolicySet};

pub(crate) const ACCESS_GROUP: &str = "access.smi-spec.io";
pub(crate) const SPECS_GROUP: &str = "specs.smi-spec.io";
pub(crate) const SPLIT_GROUP: &str = "split.smi-spec.io";

/// SMI versions, in order; what each group and kind accepts is decided in [`classify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Version {
    V1Alpha1,
    V1Alpha2,
    V1Alpha3,
    V1Alpha4,
}

impl Version {
    fn parse(s: &str) -> Option<Version> {
        Some(match s {
            "v1alpha1" => Version::V1Alpha1,
            "v1alpha2" => Version::V1Alpha2,
            "v1alpha3" => Version::V1Alpha3,
            "v1alpha4" => Version::V1Alpha4,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Version::V1Alpha1 => "v1alpha1",
            Version::V1Alpha2 => "v1alpha2",
            Version::V1Alpha3 => "v1alpha3",
            Version::V1Alpha4 => "v1alpha4",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SmiKind {
    TrafficTarget,
    HttpRouteGroup,
    TcpRoute,
    UdpRoute,
    TrafficSplit,
}

impl SmiKind {
    fn parse(kind: &str) -> Option<SmiKind> {
        Some(match kind {
            "TrafficTarget" => SmiKind::TrafficTarget,
            "HTTPRouteGroup" => SmiKind::HttpRouteGroup,
            "TCPRoute" => SmiKind::TcpRoute,
            "UDPRoute" => SmiKind::UdpRoute,
            "TrafficSplit" => SmiKind::TrafficSplit,
            _ => return None,
        })
    }

    fn group(self) -> &'static str {
        match self {
            SmiKind::TrafficTarget => ACCESS_GROUP,
            SmiKind::HttpRouteGroup | SmiKind::TcpRoute | SmiKind::UdpRoute => SPECS_GROUP,
            SmiKind::TrafficSplit => SPLIT_GROUP,
        }
    }

    /// The versions that define this kind.
    fn versions(self) -> &'static [&'static str] {
        match self {
            SmiKind::TrafficTarget => &["v1alpha1", "v1alpha2", "v1alpha3"],
            SmiKind::UdpRoute => &["v1alpha4"],
            _ => &["v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4"],
        }
    }

    fn latest(self) -> Version {
        match self {
            SmiKind::TrafficTarget => Version::V1Alpha3,
            _ => Version::V1Alpha4,
        }
    }
}

/// What a document is, decided from `apiVersion` and `kind` alone.
enum Class {
    Smi(SmiKind, Version),
    /// Not SMI policy (Deployments, Services, TrafficMetrics, kuttl steps, ...).
    Skip,
    List,
    Invalid {
        field: &'static str,
        message: String,
    },
}

fn classify(api_version: Option<&str>, kind: Option<&str>) -> (Class, Option<String>) {
    let Some(api_version) = api_version else {
        return match kind.and_then(SmiKind::parse) {
            // The split docs' A/B HTTPRouteGroup example has no apiVersion: read the newest shape.
            Some(k) => (
                Class::Smi(k, k.latest()),
                Some(format!(
                    "apiVersion missing; read as {}/{}",
                    k.group(),
                    k.latest().as_str()
                )),
            ),
            None if kind.is_none() => (
                Class::Invalid {
                    field: "apiVersion",
                    message: "not a Kubernetes object: no apiVersion or kind".into(),
                },
                None,
            ),
            None => (Class::Skip, None),
        };
    };
    let smi_groups = [ACCESS_GROUP, SPECS_GROUP, SPLIT_GROUP];
    // No `/`: a core-group version (`v1`), or an SMI group whose version was left out.
    let (group, version) = match api_version.split_once('/') {
        Some(gv) => gv,
        None if smi_groups.contains(&api_version) => (api_version, ""),
        None => ("", api_version),
    };
    if kind == Some("List") && group.is_empty() {
        return (Class::List, None);
    }
    // Everything else, metrics.smi-spec.io included (a read-only API, not policy), is skipped.
    if !smi_groups.contains(&group) {
        return (Class::Skip, None);
    }
    let Some(kind) = kind else {
        return (
            Class::Invalid {
                field: "kind",
                message: "missing".into(),
            },
            None,
        );
    };
    let Some(smi_kind) = SmiKind::parse(kind).filter(|k| k.group() == group) else {
        return (
            Class::Invalid {
                field: "kind",
                message: format!("unknown kind {kind:?} for {group}"),
            },
            None,
        );
    };
    match Version::parse(version).filter(|_| smi_kind.versions().contains(&version)) {
        Some(v) => (Class::Smi(smi_kind, v), None),
        None => (
            Class::Invalid {
                field: "apiVersion",
                message: format!(
                    "unsupported version {api_version:?} for {kind}; supported: {}",
                    smi_kind
                        .versions()
                        .iter()
                        .map(|v| format!("{group}/{v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
            None,
        ),
    }
}

/// The SMI objects of `text` as written (parsed, their fields not read), in document order, a
/// `List`'s items in its place: what `smictl apply` stores, one object per key. What the loader
/// skips (Deployments, Services, ...) is left out, and so is what it would refuse (malformed
/// text, an unknown SMI kind): load the text first, and use this only on text that loads.
pub fn smi_objects(text: &str, format: Format) -> Vec<Value> {
    fn visit(value: Value, out: &mut Vec<Value>) {
        let api_version = value.get("apiVersion").and_then(Value::as_str);
        let kind = value.get("kind").and_then(Value::as_str);
        match classify(api_version, kind).0 {
            Class::Smi(..) => out.push(value),
            Class::List => {
                if let Value::Object(mut map) = value
                    && let Some(Value::Array(items)) = map.remove("items")
                {
                    for item in items {
                        visit(item, out);
                    }
                }
            }
            Class::Skip | Class::Invalid { .. } => {}
        }
    }
    let documents: Vec<Value> = match format {
        Format::Json => serde_json::from_str(text).into_iter().collect(),
        // Up to a syntax error, as the loader reads.
        Format::Yaml => serde_yaml_ng::Deserializer::from_str(text)
            .map_while(|document| Value::deserialize(document).ok())
            .collect(),
    };
    let mut out = Vec::new();
    for document in documents {
        visit(document, &mut out);
    }
    out
}

pub(crate) struct DocumentReader<'a> {
    pub source: Arc<str>,
    pub policy: &'a mut PolicySet,
    pub diagnostics: &'a mut Vec<Diagnostic>,
    pub skipped: &'a mut usize,
}

impl DocumentReader<'_> {
    pub fn read(&mut self, text: &str, format: Format) {
        match format {
            Format::Json => match serde_json::from_str::<Value>(text) {
                Ok(value) => self.object(value, 1),
                Err(e) => self.syntax_error(1, format!("malformed JSON: {e}")),
            },
            Format::Yaml => {
                for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
                    match Value::deserialize(doc) {
                        Ok(value) => self.object(value, i + 1),
                        Err(e) => {
                            // The YAML parser cannot resynchronise after a syntax error.
                            self.syntax_error(i + 1, format!("malformed YAML: {e}"));
                            break;
                        }
                    }
                }
            }
        }
    }

    fn origin(&self, document: usize) -> Origin {
        Origin {
            source: self.source.clone(),
            document,
        }
    }

    fn syntax_error(&mut self, document: usize, message: String) {
        self.diagnostics.push(Diagnostic {
            severity: Severity::Error,
            origin: Some(self.origin(document)),
            resource: None,
            field: None,
            message,
        });
    }

    fn object(&mut self, value: Value, document: usize) {
        let Value::Object(map) = &value else {
            if !value.is_null() {
                self.syntax_error(
                    document,
                    "document is not a mapping (a Kubernetes object)".into(),
                );
            }
            return;
        };
        let api_version = map.get("apiVersion").and_then(Value::as_str);
        let kind = map.get("kind").and_then(Value::as_str);
        let (class, note) = classify(api_version, kind);
        let (smi_kind, version) = match class {
            Class::Skip => {
                *self.skipped += 1;
                return;
            }
            Class::List => {
                if let Some(Value::Array(items)) = map.get("items") {
                    for item in items.clone() {
                        self.object(item, document);
                    }
                }
                return;
            }
            Class::Invalid { field, message } => {
                self.report(document, kind, &value)
                    .error(field.to_owned(), message);
                return;
            }
            Class::Smi(k, v) => (k, v),
        };
        let mut r = self.report(document, kind, &value);
        if let Some(note) = note {
            r.warn(None, note);
        }
        let Some(meta) = read_meta(&value, smi_kind, version, r.origin.clone(), &mut r) else {
            return;
        };
        match smi_kind {
            SmiKind::TrafficTarget => {
                if let Some(t) = access::read_traffic_target(&value, version, meta, &mut r) {
                    self.policy.targets.push(t);
                }
            }
            SmiKind::HttpRouteGroup => {
                if let Some(g) = specs::read_http_route_group(&value, meta, &mut r) {
                    self.policy.route_groups.push(g);
                }
            }
            SmiKind::TcpRoute | SmiKind::UdpRoute => {
                let udp = smi_kind == SmiKind::UdpRoute;
                if let Some(route) = specs::read_l4_route(&value, version, udp, meta, &mut r) {
                    self.policy.l4_routes.push(route);
                }
            }
            SmiKind::TrafficSplit => {
                if let Some(s) = split::read_traffic_split(&value, version, meta, &mut r) {
                    self.policy.splits.push(s);
                }
            }
        }
    }

    fn report(&mut self, document: usize, kind: Option<&str>, value: &Value) -> Reporter<'_> {
        let metadata = value.get("metadata");
        let text = |key: &str| {
            metadata
                .and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let resource = kind.map(|kind| ResourceId {
            kind: kind.to_owned(),
            namespace: text("name").map(|_| text("namespace").unwrap_or_else(|| "default".into())),
            name: text("name"),
        });
        Reporter {
            origin: Some(self.origin(document)),
            resource,
            sink: self.diagnostics,
        }
    }
}

fn read_meta(
    value: &Value,
    kind: SmiKind,
    version: Version,
    origin: Option<Origin>,
    r: &mut Reporter<'_>,
) -> Option<Meta> {
    // Read from the whole document, so that a type error's path starts at `metadata`.
    let doc: wire::WithMetadata = wire::parse(value, r)?;
    let Some(meta) = doc.metadata else {
        r.error("metadata".to_owned(), "missing");
        return None;
    };
    let Some(name) = meta.name.filter(|n| !n.is_empty()) else {
        r.error("metadata.name".to_owned(), "missing");
        return None;
    };
    let namespace = meta
        .namespace
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into());
    let name_ok = names::check(&name, NameKind::Subdomain, || "metadata.name".to_owned(), r);
    let namespace_ok = names::check(
        &namespace,
        NameKind::Label,
        || "metadata.namespace".to_owned(),
        r,
    );
    if !(name_ok && namespace_ok) {
        return None;
    }
    Some(Meta {
        namespace,
        name,
        api_version: format!("{}/{}", kind.group(), version.as_str()),
        origin: origin.unwrap_or_else(|| Origin {
            source: Arc::from(""),
            document: 0,
        }),
    })
}
