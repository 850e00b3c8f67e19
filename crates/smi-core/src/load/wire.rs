//! Serde shapes of the SMI documents, lenient by design: unknown fields are ignored (as CRD
//! pruning would drop them) and fields whose type varies between versions (weights, ports,
//! headers) arrive as raw values that the per-kind readers check with precise messages.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::diagnostic::Reporter;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ObjectMeta {
    pub name: Option<String>,
    pub namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct WithMetadata {
    pub metadata: Option<ObjectMeta>,
}

/// Deserializes a document, reporting a type error at its field path.
pub(crate) fn parse<T: DeserializeOwned>(value: &Value, r: &mut Reporter<'_>) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let path = e.path().to_string();
            let field = (path != ".").then_some(path);
            r.error(field, e.into_inner().to_string());
            None
        }
    }
}

// === TrafficTarget ===

#[derive(Debug, Deserialize)]
pub(crate) struct TrafficTargetDoc {
    /// v1alpha2+.
    pub spec: Option<TargetBody>,
    /// v1alpha1 keeps the body at the top level.
    #[serde(default)]
    pub destination: Option<Subject>,
    #[serde(default)]
    pub sources: Option<Vec<Subject>>,
    #[serde(default)]
    pub specs: Option<Vec<RuleRef>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct TargetBody {
    pub destination: Option<Subject>,
    pub sources: Option<Vec<Subject>>,
    pub rules: Option<Vec<RuleRef>>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Subject {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    /// An int in v1alpha1/v1alpha2; seen as a string in the conformance suite's v1alpha3 YAML.
    pub port: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RuleRef {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub matches: Option<Vec<String>>,
}

// === HTTPRouteGroup, TCPRoute, UDPRoute ===

#[derive(Debug, Deserialize)]
pub(crate) struct HttpRouteGroupDoc {
    pub spec: Option<HttpRouteGroupSpec>,
    /// v1alpha1/v1alpha2 shape, also seen under v1alpha4 in the conformance suite.
    pub matches: Option<Vec<HttpMatchDoc>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct HttpRouteGroupSpec {
    pub matches: Option<Vec<HttpMatchDoc>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HttpMatchDoc {
    pub name: Option<String>,
    pub path_regex: Option<String>,
    pub methods: Option<Vec<String>>,
    /// A map, or a list of single-key maps (both are in circulation).
    pub headers: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct L4RouteDoc {
    pub spec: Option<L4RouteSpec>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct L4RouteSpec {
    /// v1alpha4: one object (not a list) with `ports` (and an undocumented `name`).
    pub matches: Option<L4Matches>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct L4Matches {
    pub ports: Option<Vec<Value>>,
}

// === TrafficSplit ===

#[derive(Debug, Deserialize)]
pub(crate) struct TrafficSplitDoc {
    pub spec: Option<SplitSpec>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SplitSpec {
    pub service: Option<String>,
    pub backends: Option<Vec<BackendDoc>>,
    pub matches: Option<Vec<TypedRef>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct BackendDoc {
    pub service: Option<String>,
    /// A Quantity (string or number) in v1alpha1, an integer later.
    pub weight: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TypedRef {
    pub kind: Option<String>,
    pub name: Option<String>,
}
