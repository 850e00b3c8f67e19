//! The writing verbs: create (POST; TokenReview and SubjectAccessReview are answered, not
//! stored), update (PUT), patch (PATCH: merge, JSON, and server-side apply as a merge that may
//! create), delete and deletecollection (DELETE).

use http::StatusCode;
use serde_json::{Value, json};

use super::patch;
use super::rest::{Answer, Resolved, list_document};
use super::state::{State, served};
use super::status::ApiError;
use super::write::{Part, Preconditions};
use super::{Shared, read::ListQuery};

/// The request's body as an object of the path's resource and version.
fn object(r: &Resolved<'_>) -> Result<Value, ApiError> {
    let object: Value = serde_json::from_slice(&r.call.body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not JSON: {e}")))?;
    check(r, &object)?;
    Ok(object)
}

/// The checks the real server's decoding makes: an object of the path's kind and version, in
/// the path's namespace.
fn check(r: &Resolved<'_>, object: &Value) -> Result<(), ApiError> {
    if !object.is_object() || !(object["metadata"].is_null() || object["metadata"].is_object()) {
        return Err(ApiError::bad_request(
            "the request body is not an object with metadata",
        ));
    }
    let expected = r.rt.api_version(&r.target.version);
    if let Some(given) = object["apiVersion"].as_str()
        && given != expected
    {
        let message = format!(
            "the API version in the data ({given}) does not match the expected API version ({expected})"
        );
        return Err(ApiError::bad_request(message));
    }
    if let Some(given) = object["kind"].as_str()
        && given != r.rt.kind
    {
        let message = format!(
            "the kind in the data ({given}) does not match the expected kind ({})",
            r.rt.kind
        );
        return Err(ApiError::bad_request(message));
    }
    if let Some(given) = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        && r.rt.namespaced
        && !given.is_empty()
        && given != r.namespace
    {
        let message =
            "the namespace of the provided object does not match the namespace sent on the request";
        return Err(ApiError::bad_request(message));
    }
    Ok(())
}

fn part(r: &Resolved<'_>) -> Part {
    if r.target.subresource.is_some() {
        Part::Status
    } else {
        Part::Main
    }
}

fn name<'a>(r: &'a Resolved<'_>) -> &'a str {
    r.target.name.as_deref().unwrap_or_default()
}

pub(super) fn create(shared: &Shared, r: &Resolved<'_>) -> Answer {
    let object = object(r)?;
    let version = &r.target.version;
    match r.rt.kind.as_str() {
        "TokenReview" => {
            let review = shared.read(|s| s.reviews.token_review(object))?;
            Ok((StatusCode::CREATED, served(&r.rt, version, &review)))
        }
        "SubjectAccessReview" => {
            let review = shared.read(|s| s.reviews.access_review(object))?;
            Ok((StatusCode::CREATED, served(&r.rt, version, &review)))
        }
        _ => {
            let stored = shared.update(|s| s.create(&r.rt, &r.namespace, object, true))?;
            Ok((StatusCode::CREATED, served(&r.rt, version, &stored)))
        }
    }
}

pub(super) fn update(shared: &Shared, r: &Resolved<'_>) -> Answer {
    let object = object(r)?;
    let stored = shared.update(|s| s.replace(&r.rt, &r.namespace, name(r), object, part(r)))?;
    Ok((StatusCode::OK, served(&r.rt, &r.target.version, &stored)))
}

pub(super) fn patch(shared: &Shared, r: &Resolved<'_>) -> Answer {
    let body: Value = serde_json::from_slice(&r.call.body).map_err(|e| {
        ApiError::bad_request(format!("the patch is not JSON (YAML is not modelled): {e}"))
    })?;
    let media = r.call.content_type.as_str();
    let apply = media == "application/apply-patch+yaml";
    let merge = match media {
        "application/merge-patch+json" => true,
        "application/apply-patch+yaml" => {
            if r.call
                .query
                .get("fieldManager")
                .is_none_or(String::is_empty)
            {
                let message = "PATCH /apply requires fieldManager to be set (fieldManager is required for apply requests)";
                return Err(ApiError::bad_request(message));
            }
            check(r, &body)?;
            true
        }
        "application/json-patch+json" => false,
        "application/strategic-merge-patch+json" if !r.rt.custom => true,
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    let (version, name) = (&r.target.version, name(r));
    let (code, stored) = shared.update(|s| {
        let key = State::key(&r.rt, &r.namespace, name);
        let Some(old) = s.store.get(&key).cloned() else {
            if !apply {
                return Err(ApiError::not_found(r.rt.resource(), name));
            }
            let mut new = body.clone();
            new["metadata"]["name"] = json!(name);
            return Ok((
                StatusCode::CREATED,
                s.create(&r.rt, &r.namespace, new, true)?,
            ));
        };
        let mut new = served(&r.rt, version, &old);
        if merge {
            patch::merge(&mut new, &body);
        } else {
            patch::json(&mut new, &body).map_err(|e| ApiError::invalid_patch(&e))?;
        }
        check(r, &new)?;
        Ok((
            StatusCode::OK,
            s.replace(&r.rt, &r.namespace, name, new, part(r))?,
        ))
    })?;
    Ok((code, served(&r.rt, version, &stored)))
}

fn preconditions(r: &Resolved<'_>) -> Result<Preconditions, ApiError> {
    if r.call.body.is_empty() {
        return Ok(Preconditions::default());
    }
    let options: Value = serde_json::from_slice(&r.call.body)
        .map_err(|e| ApiError::bad_request(format!("the DeleteOptions are not JSON: {e}")))?;
    let text = |f: &str| options["preconditions"][f].as_str().map(str::to_owned);
    Ok(Preconditions {
        uid: text("uid"),
        resource_version: text("resourceVersion"),
    })
}

pub(super) fn delete(shared: &Shared, r: &Resolved<'_>) -> Answer {
    let preconditions = preconditions(r)?;
    let deleted = shared.update(|s| s.delete(&r.rt, &r.namespace, name(r), &preconditions))?;
    if deleted.gone && !r.rt.returns_deleted {
        let status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": name(r), "group": r.rt.group, "kind": r.rt.plural,
                        "uid": deleted.object["metadata"]["uid"]},
        });
        return Ok((StatusCode::OK, status));
    }
    Ok((
        StatusCode::OK,
        served(&r.rt, &r.target.version, &deleted.object),
    ))
}

pub(super) fn delete_collection(shared: &Shared, r: &Resolved<'_>) -> Answer {
    let q = &r.call.query;
    let (labels, fields) = (q.get("labelSelector"), q.get("fieldSelector"));
    let query = ListQuery {
        selector: super::selector::Selector::parse(
            labels.map(String::as_str),
            fields.map(String::as_str),
            &r.rt.fields,
        )?,
        ..ListQuery::default()
    };
    let (revision, deleted) = shared.update(|s| {
        let page = s.list(&r.rt, Some(&r.namespace), &query)?;
        let mut deleted = Vec::new();
        for object in page.items {
            let name = object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            deleted.push(
                s.delete(&r.rt, &r.namespace, name, &Preconditions::default())?
                    .object,
            );
        }
        Ok::<_, ApiError>((s.store.revision(), deleted))
    })?;
    let metadata = json!({"resourceVersion": revision.to_string()});
    Ok((StatusCode::OK, list_document(r, &deleted, metadata)))
}
