//! What a request asks to do, read from its method and path the way kube-apiserver reads it
//! (k8s.io/apiserver `RequestInfoFactory`), so that the RBAC rule that let a request through
//! kube-apiserver's own authorization is the rule that lets it through here:
//!
//! | path under `/apis/metrics.smi-spec.io/v1alpha1` | resource | subresource | namespace | name | verb |
//! |---|---|---|---|---|---|
//! | (none: discovery) | non-resource: the path | | | | `get` |
//! | `/deployments` | `deployments` | | | | `list` |
//! | `/namespaces/shop` | `namespaces` | | `shop` | `shop` | `get` |
//! | `/namespaces/shop/edges` | `edges` | | `shop` | | `list` |
//! | `/namespaces/shop/deployments` | `deployments` | | `shop` | | `list` |
//! | `/namespaces/shop/deployments/web` | `deployments` | | `shop` | `web` | `get` |
//! | `/namespaces/shop/deployments/web/edges` | `deployments` | `edges` | `shop` | `web` | `get` |
//!
//! A namespace's edges read as a list of `edges` because that is how kube-apiserver reads that
//! path: a rule must name the resource `edges` for it. Path segments are percent-decoded one
//! by one, as the router decodes its captures, so the names authorized are the names served.

use http::Method;

/// A request's attributes, as a SubjectAccessReview asks about them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Attributes {
    Resource(ResourceAttributes),
    /// Anything not under `/apis/{group}/{version}/...`: discovery, `/healthz`.
    NonResource {
        verb: String,
        path: String,
    },
}

/// A request for a resource (`resourceAttributes`); empty strings are absent fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ResourceAttributes {
    pub verb: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

/// A path that names no request kube-apiserver could have sent on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadPath {
    #[error("the path segment {0:?} is not valid percent-encoded UTF-8")]
    Encoding(String),
    #[error("unable to determine kind and namespace from url {0}")]
    NoKind(String),
}

/// Verbs written as the first segment after the version (`/watch/pods`).
const SPECIAL_VERBS: [&str; 2] = ["proxy", "watch"];

// === impl Attributes ===

impl Attributes {
    /// The attributes of a request for `path` (raw, as on the wire) with `query`.
    pub fn of(method: &Method, path: &str, query: Option<&str>) -> Result<Attributes, BadPath> {
        let non_resource = || -> Result<Attributes, BadPath> {
            Ok(Attributes::NonResource {
                verb: method.as_str().to_ascii_lowercase(),
                path: decode(path)?,
            })
        };
        let trimmed = path.trim_matches('/');
        let parts: Vec<String> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').map(decode).collect::<Result<_, _>>()?
        };
        let mut parts: &[String] = &parts;
        // `/api/{version}/...` has no group; `/apis/{group}/{version}/...` needs one more part.
        let group = match parts {
            [prefix, _, _, ..] if prefix == "api" => {
                parts = &parts[1..];
                ""
            }
            [prefix, group, _, _, ..] if prefix == "apis" => {
                parts = &parts[2..];
                group.as_str()
            }
            _ => return non_resource(),
        };
        let mut attrs = ResourceAttributes {
            group: group.to_owned(),
            version: parts[0].clone(),
            ..ResourceAttributes::default()
        };
        parts = &parts[1..];
        if SPECIAL_VERBS.contains(&parts[0].as_str()) {
            if parts.len() < 2 {
                return Err(BadPath::NoKind(path.to_owned()));
            }
            attrs.verb = parts[0].clone();
            parts = &parts[1..];
        } else {
            attrs.verb = verb_of(method).to_owned();
        }
        if parts[0] == "namespaces"
            && let Some(namespace) = parts.get(1)
        {
            attrs.namespace = namespace.clone();
            // `status` and `finalize` are the namespace's own subresources.
            if parts.len() > 2 && !["status", "finalize"].contains(&parts[2].as_str()) {
                parts = &parts[2..];
            }
        }
        let subresources = attrs.verb != "proxy";
        attrs.resource = parts[0].clone();
        if let Some(name) = parts.get(1) {
            attrs.name = name.clone();
        }
        if subresources && let Some(subresource) = parts.get(2) {
            attrs.subresource = subresource.clone();
        }
        if attrs.name.is_empty() {
            match attrs.verb.as_str() {
                "get" => attrs.verb = list_or_watch(query).to_owned(),
                "delete" => attrs.verb = "deletecollection".to_owned(),
                _ => {}
            }
        }
        Ok(Attributes::Resource(attrs))
    }

    pub fn verb(&self) -> &str {
        match self {
            Attributes::Resource(r) => &r.verb,
            Attributes::NonResource { verb, .. } => verb,
        }
    }

    /// Kubernetes' words for a denial of `user` (k8s.io/apiserver `forbiddenMessage` inside
    /// apimachinery's `NewForbidden`), `reason` (the review's) appended when there is one:
    /// `deployments.metrics.smi-spec.io "web" is forbidden: User "alice" cannot get resource
    /// "deployments/edges" in API group "metrics.smi-spec.io" in the namespace "shop"`.
    pub fn forbidden_message(&self, user: &str, reason: &str) -> String {
        let mut why = match self {
            Attributes::NonResource { verb, path } => {
                format!("User {user:?} cannot {verb} path {path:?}")
            }
            Attributes::Resource(r) => {
                let mut resource = r.resource.clone();
                if !r.subresource.is_empty() {
                    resource = format!("{resource}/{}", r.subresource);
                }
                let scope = if r.namespace.is_empty() {
                    "at the cluster scope".to_owned()
                } else {
                    format!("in the namespace {:?}", r.namespace)
                };
                format!(
                    "User {user:?} cannot {} resource {resource:?} in API group {:?} {scope}",
                    r.verb, r.group
                )
            }
        };
        if !reason.is_empty() {
            why = format!("{why}: {reason}");
        }
        match self {
            Attributes::Resource(r) if !(r.group.is_empty() && r.resource.is_empty()) => {
                let qualified = if r.group.is_empty() {
                    r.resource.clone()
                } else {
                    format!("{}.{}", r.resource, r.group)
                };
                if r.name.is_empty() {
                    format!("{qualified} is forbidden: {why}")
                } else {
                    format!("{qualified} {:?} is forbidden: {why}", r.name)
                }
            }
            _ => format!("forbidden: {why}"),
        }
    }
}

/// The verb of a request for one object, by its method.
fn verb_of(method: &Method) -> &'static str {
    match *method {
        Method::POST => "create",
        Method::GET | Method::HEAD => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    }
}

/// A GET of a collection: `watch` when the query says `watch` (anything but `false` or `0`).
fn list_or_watch(query: Option<&str>) -> &'static str {
    let watch = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| match pair.split_once('=') {
            Some(("watch", value)) => Some(value),
            None if pair == "watch" => Some(""),
            _ => None,
        });
    match watch {
        None => "list",
        Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => "list",
        Some(_) => "watch",
    }
}

/// Percent-decodes `segment`; what is not valid UTF-8 afterwards is refused.
pub(super) fn decode(segment: &str) -> Result<String, BadPath> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |at: usize| {
                let digits = bytes.get(at..at + 2)?;
                // from_str_radix alone would take a sign (`%+1`).
                if !digits.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                u8::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
            };
            let Some(byte) = hex(i + 1) else {
                return Err(BadPath::Encoding(segment.to_owned()));
            };
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| BadPath::Encoding(segment.to_owned()))
}
