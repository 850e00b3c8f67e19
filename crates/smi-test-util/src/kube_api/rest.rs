//! Requests, once authenticated: discovery, and the verbs on resources (get, list and watch
//! here; the writes in `mutate`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde_json::{Value, json};

use super::resources::ResourceType;
use super::respond::{self, Body};
use super::routes::{Route, Target};
use super::selector::Selector;
use super::state::{State, served};
use super::status::ApiError;
use super::watch::{self, WatchSpec};
use super::{Shared, discovery, mutate, read::ListQuery};

/// How long a watch without `timeoutSeconds` lasts (the real server picks 30 to 60 minutes).
const WATCH_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// One request, its body read.
#[derive(Debug)]
pub(super) struct Call {
    pub method: Method,
    pub path: String,
    /// Path and query, as logged.
    pub uri: String,
    pub query: HashMap<String, String>,
    /// The media type of the body, without parameters.
    pub content_type: String,
    pub body: Bytes,
}

/// A resource request, resolved.
pub(super) struct Resolved<'a> {
    pub call: &'a Call,
    pub rt: ResourceType,
    pub target: Target,
    /// The namespace of the path, "" if none.
    pub namespace: String,
}

pub(super) fn answer(shared: &Arc<Shared>, call: &Call) -> Response<Body> {
    let route = shared.read(|s| super::routes::route(&call.path, &s.registry));
    let discovery = !matches!(route, Route::Resource(_) | Route::Unknown);
    if discovery && call.method != Method::GET {
        return respond::error(&ApiError::method_not_allowed());
    }
    let document = match route {
        Route::Version => Some(json!({
            "major": "1", "minor": "37", "gitVersion": "v1.37.0-smi-fake",
            "platform": "linux/amd64", "goVersion": "none (a fake API server in Rust)",
        })),
        Route::Health => return respond::text(StatusCode::OK, "ok"),
        Route::ApiVersions => Some(discovery::api_versions(shared.addr)),
        Route::Groups => Some(shared.read(|s| discovery::api_group_list(&s.registry))),
        Route::Group(group) => shared.read(|s| discovery::api_group(&s.registry, &group)),
        Route::Resources { group, version } => {
            shared.read(|s| discovery::resource_list(&s.registry, &group, &version))
        }
        Route::Resource(target) => return resource(shared, call, target),
        Route::Unknown => None,
    };
    match document {
        Some(document) => respond::json(StatusCode::OK, &document),
        None => respond::error(&ApiError::no_such_path()),
    }
}

fn resource(shared: &Arc<Shared>, call: &Call, target: Target) -> Response<Body> {
    let rt = shared.read(|s| {
        s.registry
            .find(&target.group, &target.version, &target.plural)
            .cloned()
    });
    let Some(rt) = rt.filter(|rt| target.namespace.is_none() || rt.namespaced) else {
        return respond::error(&ApiError::no_such_path());
    };
    if target
        .subresource
        .as_deref()
        .is_some_and(|s| s != "status" || !rt.status)
    {
        return respond::error(&ApiError::no_such_path());
    }
    let watching = matches!(
        call.query.get("watch").map(String::as_str),
        Some("true" | "1")
    );
    let verb = match (&call.method, &target.name) {
        (&Method::GET, Some(_)) => "get",
        (&Method::GET, None) if watching => "watch",
        (&Method::GET, None) => "list",
        (&Method::POST, None) => "create",
        (&Method::PUT, Some(_)) => "update",
        (&Method::PATCH, Some(_)) => "patch",
        (&Method::DELETE, Some(_)) => "delete",
        (&Method::DELETE, None) => "deletecollection",
        _ => "",
    };
    let writes = !matches!(verb, "get" | "list" | "watch");
    let unscoped = rt.namespaced && target.namespace.is_none();
    let on_status = target.subresource.is_some() && !matches!(verb, "get" | "update" | "patch");
    if !rt.allows(verb) || (writes && unscoped) || (verb == "get" && unscoped) || on_status {
        return respond::error(&ApiError::method_not_allowed());
    }
    if call.query.contains_key("dryRun") {
        return respond::error(&ApiError::bad_request(
            "dryRun is not modelled by the fake API server",
        ));
    }
    let namespace = target.namespace.clone().unwrap_or_default();
    let r = Resolved {
        call,
        rt,
        target,
        namespace,
    };
    let answered = match verb {
        "get" => get(shared, &r),
        "list" => list(shared, &r),
        "watch" => return watch(shared, &r),
        "create" => mutate::create(shared, &r),
        "update" => mutate::update(shared, &r),
        "patch" => mutate::patch(shared, &r),
        "delete" => mutate::delete(shared, &r),
        _ => mutate::delete_collection(shared, &r),
    };
    match answered {
        Ok((code, document)) => respond::json(code, &document),
        Err(e) => respond::error(&e),
    }
}

pub(super) type Answer = Result<(StatusCode, Value), ApiError>;

fn get(shared: &Shared, r: &Resolved<'_>) -> Answer {
    let name = r.target.name.as_deref().unwrap_or_default();
    let key = State::key(&r.rt, &r.namespace, name);
    let object = shared.read(|s| s.store.get(&key).cloned());
    let object = object.ok_or_else(|| ApiError::not_found(r.rt.resource(), name))?;
    Ok((StatusCode::OK, served(&r.rt, &r.target.version, &object)))
}

fn selector(r: &Resolved<'_>) -> Result<Selector, ApiError> {
    let q = &r.call.query;
    let (labels, fields) = (q.get("labelSelector"), q.get("fieldSelector"));
    Selector::parse(
        labels.map(String::as_str),
        fields.map(String::as_str),
        &r.rt.fields,
    )
}

/// A list document of `items` (stored objects): typed lists of built-in kinds carry no
/// `apiVersion`/`kind` on their items, lists of custom resources do, as on the real server.
pub(super) fn list_document(r: &Resolved<'_>, items: &[Value], metadata: Value) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut o = served(&r.rt, &r.target.version, o);
            if !r.rt.custom
                && let Some(map) = o.as_object_mut()
            {
                map.remove("apiVersion");
                map.remove("kind");
            }
            o
        })
        .collect();
    json!({
        "kind": format!("{}List", r.rt.kind),
        "apiVersion": r.rt.api_version(&r.target.version),
        "metadata": metadata,
        "items": items,
    })
}

fn list(shared: &Shared, r: &Resolved<'_>) -> Answer {
    let q = &r.call.query;
    let limit = match q.get("limit") {
        Some(l) => Some(
            l.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        ),
        None => None,
    };
    let query = ListQuery {
        selector: selector(r)?,
        limit,
        continue_token: q.get("continue").filter(|c| !c.is_empty()).cloned(),
        resource_version: q.get("resourceVersion").cloned(),
        version_match: q.get("resourceVersionMatch").cloned(),
    };
    let namespace = r.target.namespace.as_deref();
    let page = shared.read(|s| s.list(&r.rt, namespace, &query))?;
    let mut metadata = json!({"resourceVersion": page.revision.to_string()});
    if let Some(token) = page.continue_token {
        metadata["continue"] = json!(token);
    }
    if let Some(n) = page.remaining {
        metadata["remainingItemCount"] = json!(n);
    }
    Ok((StatusCode::OK, list_document(r, &page.items, metadata)))
}

fn watch(shared: &Arc<Shared>, r: &Resolved<'_>) -> Response<Body> {
    let spec = (|| {
        let q = &r.call.query;
        let from =
            match q.get("resourceVersion").map(String::as_str) {
                None | Some("" | "0") => None,
                Some(v) => Some(v.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version: {v:?}"))
                })?),
            };
        let timeout = match q.get("timeoutSeconds") {
            Some(t) => Duration::from_secs(
                t.parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?,
            ),
            None => WATCH_TIMEOUT,
        };
        let initial_events = q.get("sendInitialEvents").is_some_and(|v| v == "true");
        Ok::<_, ApiError>(WatchSpec {
            rt: r.rt.clone(),
            version: r.target.version.clone(),
            namespace: r.target.namespace.clone(),
            selector: selector(r)?,
            from: if initial_events { None } else { from },
            bookmarks: q.get("allowWatchBookmarks").is_some_and(|v| v == "true"),
            initial_events_end: initial_events,
            timeout,
            path: r.call.uri.clone(),
        })
    })();
    match spec {
        Ok(spec) => respond::stream(watch::stream(shared.clone(), spec)),
        Err(e) => respond::error(&e),
    }
}
