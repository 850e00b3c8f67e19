//! Writes with the real server's rules: create (409 AlreadyExists), replace (409 Conflict on a
//! stale `resourceVersion`; no new revision when nothing changed), delete (finalizers hold an
//! object with a `deletionTimestamp`; a namespace or CRD takes its objects with it), and the
//! fields the server owns: `uid`, `creationTimestamp`, `generation`, `resourceVersion`.

use serde_json::{Map, Value, json};

use super::defaults;
use super::ids;
use super::resources::ResourceType;
use super::state::State;
use super::status::ApiError;
use super::store::Key;

/// Which part of an object a replace writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Part {
    /// The object; its status is kept if the resource has a status subresource.
    Main,
    /// The `/status` subresource: only the status.
    Status,
    /// Everything as given (the test side).
    All,
}

/// `DeleteOptions.preconditions`.
#[derive(Clone, Debug, Default)]
pub(super) struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

/// What a delete did.
#[derive(Debug)]
pub(super) struct Deleted {
    /// The object: gone (with the deletion's revision), or marked for deletion.
    pub object: Value,
    /// False while finalizers hold it.
    pub gone: bool,
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The object with `metadata` and (when `status` is separate) `status` left out: what a
/// generation counts.
fn content(object: &Value, status: bool) -> Map<String, Value> {
    let mut map = object.as_object().cloned().unwrap_or_default();
    map.remove("metadata");
    map.remove("apiVersion");
    if status {
        map.remove("status");
    }
    map
}

/// Sets `field` of `object` to `value`, or removes it.
fn set_or_remove(object: &mut Value, field: &str, value: Option<&Value>) {
    match value.filter(|v| !v.is_null()) {
        Some(v) => object[field] = v.clone(),
        None => {
            if let Some(map) = object.as_object_mut() {
                map.remove(field);
            }
        }
    }
}

// === impl State ===

impl State {
    /// Creates `object` (`metadata.name` or `generateName`); `admit` applies the API's rules
    /// (the namespace must exist; status is not written on create where it is a subresource),
    /// which the test side skips. Returns the stored object.
    pub fn create(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        mut object: Value,
        admit: bool,
    ) -> Result<Value, ApiError> {
        let mut name = text(&object, "/metadata/name").to_owned();
        if name.is_empty() {
            let prefix = text(&object, "/metadata/generateName");
            if prefix.is_empty() {
                let why = "metadata.name: Required value: name or generateName is required";
                return Err(ApiError::invalid(&rt.kind, &rt.group, "", why));
            }
            name = format!("{prefix}{}", ids::random_hex(5));
        }
        if rt.namespaced && namespace.is_empty() {
            return Err(ApiError::bad_request(
                "the namespace of the object is required",
            ));
        }
        if admit && rt.namespaced {
            let ns = State::key(
                self.registry.resource("", "namespaces").expect("built in"),
                "",
                namespace,
            );
            if self.store.get(&ns).is_none() {
                let namespaces = super::status::Resource {
                    group: "",
                    plural: "namespaces",
                };
                return Err(ApiError::not_found(namespaces, namespace));
            }
        }
        let key = State::key(rt, namespace, &name);
        if self.store.get(&key).is_some() {
            return Err(ApiError::already_exists(rt.resource(), &name));
        }
        let meta = &mut object["metadata"];
        meta["name"] = json!(name);
        if rt.namespaced {
            meta["namespace"] = json!(namespace);
        } else if let Some(m) = meta.as_object_mut() {
            m.remove("namespace");
        }
        if let Some(m) = meta.as_object_mut() {
            for owned in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            ] {
                m.remove(owned);
            }
        }
        meta["uid"] = json!(ids::uid());
        meta["creationTimestamp"] = json!(ids::now_rfc3339());
        meta["generation"] = json!(1);
        object["apiVersion"] = json!(rt.api_version(&rt.storage));
        object["kind"] = json!(rt.kind);
        if admit
            && rt.status
            && rt.kind != "CustomResourceDefinition"
            && let Some(m) = object.as_object_mut()
        {
            m.remove("status");
        }
        defaults::on_create(self, rt, &mut object, admit)?;
        let (_, stored) = self.store.write(key, Some(object));
        if rt.kind == "CustomResourceDefinition" {
            self.refresh_registry();
        }
        Ok(stored.expect("a write of an object stores it"))
    }

    /// Replaces the object `name` with `object` (its `metadata.resourceVersion`, when given,
    /// must be the stored one). Returns the stored object.
    pub fn replace(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        object: Value,
        part: Part,
    ) -> Result<Value, ApiError> {
        let key = State::key(rt, namespace, name);
        let Some(old) = self.store.get(&key).cloned() else {
            return Err(ApiError::not_found(rt.resource(), name));
        };
        let given = text(&object, "/metadata/name");
        if !given.is_empty() && given != name {
            let message = format!(
                "the name of the object ({given}) does not match the name on the URL ({name})"
            );
            return Err(ApiError::bad_request(message));
        }
        let asked = text(&object, "/metadata/resourceVersion");
        if part != Part::All
            && !asked.is_empty()
            && asked != text(&old, "/metadata/resourceVersion")
        {
            return Err(ApiError::conflict(rt.resource(), name, ApiError::MODIFIED));
        }
        let mut new = match part {
            Part::Status => {
                let mut new = old.clone();
                set_or_remove(&mut new, "status", object.get("status"));
                new
            }
            Part::Main | Part::All => object,
        };
        if part == Part::Main && rt.status {
            set_or_remove(&mut new, "status", old.get("status"));
        }
        for owned in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            set_or_remove(&mut new["metadata"], owned, old["metadata"].get(owned));
        }
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        new["apiVersion"] = json!(rt.api_version(&rt.storage));
        new["kind"] = json!(rt.kind);
        defaults::on_update(rt, &old, &mut new)?;
        if content(&new, rt.status) != content(&old, rt.status) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0);
            new["metadata"]["generation"] = json!(generation + 1);
        }
        if new == old {
            return Ok(old);
        }
        let finalized = new["metadata"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty);
        let deleting = !new["metadata"]["deletionTimestamp"].is_null();
        let (_, stored) = self.store.write(key.clone(), Some(new));
        let stored = stored.expect("a write of an object stores it");
        if deleting && finalized {
            // The last finalizer is gone: the update is written, then the object deleted.
            return Ok(self.remove(rt, &key, stored).object);
        }
        if rt.kind == "CustomResourceDefinition" {
            self.refresh_registry();
        }
        Ok(stored)
    }

    /// Deletes the object `name`, or marks it (`deletionTimestamp`) while finalizers hold it.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        preconditions: &Preconditions,
    ) -> Result<Deleted, ApiError> {
        let key = State::key(rt, namespace, name);
        let Some(old) = self.store.get(&key).cloned() else {
            return Err(ApiError::not_found(rt.resource(), name));
        };
        let checks = [
            ("UID", &preconditions.uid, "/metadata/uid"),
            (
                "ResourceVersion",
                &preconditions.resource_version,
                "/metadata/resourceVersion",
            ),
        ];
        for (what, wanted, pointer) in checks {
            if let Some(wanted) = wanted
                && wanted != text(&old, pointer)
            {
                let why = format!(
                    "Precondition failed: {what} in precondition: {wanted}, {what} in object meta: {}",
                    text(&old, pointer)
                );
                return Err(ApiError::conflict(rt.resource(), name, &why));
            }
        }
        if old["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
        {
            if !old["metadata"]["deletionTimestamp"].is_null() {
                return Ok(Deleted {
                    object: old,
                    gone: false,
                });
            }
            let mut marked = old;
            marked["metadata"]["deletionTimestamp"] = json!(ids::now_rfc3339());
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            let (_, stored) = self.store.write(key, Some(marked));
            let object = stored.expect("a write of an object stores it");
            return Ok(Deleted {
                object,
                gone: false,
            });
        }
        Ok(self.remove(rt, &key, old))
    }

    /// Removes the object at `key` (last stored as `old`), and what it owns: a namespace's
    /// objects, a CustomResourceDefinition's custom resources.
    pub fn remove(&mut self, rt: &ResourceType, key: &Key, mut old: Value) -> Deleted {
        let owned: Vec<Key> = match rt.kind.as_str() {
            "Namespace" => self
                .store
                .keys()
                .filter(|k| k.namespace == key.name)
                .cloned()
                .collect(),
            "CustomResourceDefinition" => {
                let (group, plural) = (text(&old, "/spec/group"), text(&old, "/spec/names/plural"));
                self.store
                    .range(group, plural, None)
                    .map(|(k, _)| k.clone())
                    .collect()
            }
            _ => Vec::new(),
        };
        for k in owned {
            self.store.write(k, None);
        }
        let (revision, _) = self.store.write(key.clone(), None);
        old["metadata"]["resourceVersion"] = json!(revision.to_string());
        if rt.kind == "CustomResourceDefinition" {
            self.refresh_registry();
        }
        Deleted {
            object: old,
            gone: true,
        }
    }
}
