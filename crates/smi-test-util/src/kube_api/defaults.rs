//! What the server fills in or checks for particular kinds, as the real one's strategies do:
//! Secrets' `stringData` folded into base64 `data`; Services' type, cluster IP and port defaults;
//! a new Pod's `Pending` phase; a Namespace's `Active` phase; a CustomResourceDefinition's
//! validation and its `Established` status. Nothing else is defaulted.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::resources::{self, ResourceType};
use super::state::State;
use super::status::ApiError;

/// Fills in a new object of `rt`; `admit` is false for the test side's writes.
pub(super) fn on_create(
    state: &mut State,
    rt: &ResourceType,
    object: &mut Value,
    admit: bool,
) -> Result<(), ApiError> {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Secret") => secret(object)?,
        ("", "Service") => {
            service_defaults(object);
            let spec = &mut object["spec"];
            let external = spec["type"] == "ExternalName";
            if !external && spec["clusterIP"].as_str().is_none_or(str::is_empty) {
                let n = state.next_ip;
                state.next_ip += 1;
                let ip = format!("10.{}.{}.{}", 96 + (n >> 16), (n >> 8) & 0xff, n & 0xff);
                spec["clusterIP"] = json!(ip);
            }
            if !external && spec["clusterIPs"].is_null() {
                spec["clusterIPs"] = json!([spec["clusterIP"]]);
            }
        }
        ("", "Pod") if admit => object["status"] = json!({"phase": "Pending"}),
        ("", "Namespace") => {
            object["spec"]["finalizers"] = json!(["kubernetes"]);
            object["status"] = json!({"phase": "Active"});
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(object, None)?,
        _ => {}
    }
    Ok(())
}

/// Fills in and checks a replacement `new` of `old`.
pub(super) fn on_update(rt: &ResourceType, old: &Value, new: &mut Value) -> Result<(), ApiError> {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Secret") => secret(new)?,
        ("", "Service") => {
            service_defaults(new);
            for field in ["clusterIP", "clusterIPs"] {
                let (was, is) = (&old["spec"][field], &new["spec"][field]);
                if is.is_null() || *is == "" {
                    new["spec"][field] = was.clone();
                } else if !was.is_null() && was != is {
                    let name = old
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    let why = format!("spec.{field}: Invalid value: {is}: field is immutable");
                    return Err(ApiError::invalid("Service", "", name, &why));
                }
            }
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(new, Some(old))?,
        _ => {}
    }
    Ok(())
}

fn secret(object: &mut Value) -> Result<(), ApiError> {
    if let Some(Value::Object(strings)) =
        object.as_object_mut().and_then(|o| o.remove("stringData"))
    {
        for (key, value) in strings {
            let text = value.as_str().unwrap_or_default();
            object["data"][key] = json!(STANDARD.encode(text));
        }
    }
    if let Some(data) = object["data"].as_object() {
        for (key, value) in data {
            let decodes = value.as_str().is_some_and(|v| STANDARD.decode(v).is_ok());
            if !decodes {
                let message = format!(
                    "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data in data[{key:?}]"
                );
                return Err(ApiError::bad_request(message));
            }
        }
    }
    if object["type"].is_null() {
        object["type"] = json!("Opaque");
    }
    Ok(())
}

fn service_defaults(object: &mut Value) {
    let spec = &mut object["spec"];
    if spec["type"].is_null() {
        spec["type"] = json!("ClusterIP");
    }
    if spec["sessionAffinity"].is_null() {
        spec["sessionAffinity"] = json!("None");
    }
    if let Some(ports) = spec["ports"].as_array_mut() {
        for port in ports {
            if port["protocol"].is_null() {
                port["protocol"] = json!("TCP");
            }
            if port["targetPort"].is_null() {
                port["targetPort"] = port["port"].clone();
            }
        }
    }
}

/// Checks a CustomResourceDefinition and sets its status as the real server does once it has
/// accepted the names: `NamesAccepted` and `Established`, `acceptedNames`, `storedVersions`.
fn crd(object: &mut Value, old: Option<&Value>) -> Result<(), ApiError> {
    let rt = resources::custom(object)?;
    let mut stored: Vec<Value> = old
        .and_then(|o| o.pointer("/status/storedVersions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !stored.contains(&json!(rt.storage)) {
        stored.push(json!(rt.storage));
    }
    let mut names = object["spec"]["names"].clone();
    names["singular"] = json!(rt.singular);
    names["listKind"] = json!(format!("{}List", rt.kind));
    // Kept from before, so that a replace that changes nothing writes nothing.
    let conditions = old
        .and_then(|o| o.pointer("/status/conditions"))
        .cloned()
        .unwrap_or_else(|| {
            let now = super::ids::now_rfc3339();
            json!([
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": now},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted", "lastTransitionTime": now},
            ])
        });
    object["status"] = json!({
        "acceptedNames": names,
        "conditions": conditions,
        "storedVersions": stored,
    });
    Ok(())
}
