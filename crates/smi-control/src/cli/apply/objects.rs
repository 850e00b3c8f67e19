//! The SMI objects of the files `smictl apply` is given, each with the key it is stored under.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;

use serde_json::Value;
use smi_core::load::{Format, smi_objects};

use super::kind::Kind;
use crate::etcd::keys::Keys;
use crate::files::policy_files;

/// One SMI resource to store, as it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub value: Value,
}

impl Object {
    /// The object's kind, namespace and name as the loader reads them: a missing or empty
    /// `metadata.namespace` is `default`. `None` for what the loader would not load.
    pub fn new(value: Value) -> Option<Object> {
        let kind = Kind::from_name(value.get("kind")?.as_str()?)?;
        let metadata = value.get("metadata")?;
        let text = |field: &str| metadata.get(field).and_then(Value::as_str);
        let name = text("name").filter(|n| !n.is_empty())?.to_owned();
        let namespace = text("namespace")
            .filter(|n| !n.is_empty())
            .unwrap_or("default")
            .to_owned();
        Some(Object {
            kind,
            namespace,
            name,
            value,
        })
    }

    /// `policy/<Kind>/<namespace>/<name>` under the prefix.
    pub fn key(&self, keys: &Keys) -> String {
        keys.policy(self.kind.name(), &self.namespace, &self.name)
    }

    /// What the value is stored as: compact JSON.
    pub fn bytes(&self) -> Vec<u8> {
        // `Value`'s `Display` is its compact JSON; it cannot fail.
        self.value.to_string().into_bytes()
    }
}

/// How an output line names a resource: `traffictarget.access.smi-spec.io shop/reviews`.
pub fn describe(kind: Kind, namespace: &str, name: &str) -> String {
    format!("{kind} {namespace}/{name}")
}

/// Every SMI object in the files under `paths` (read as `load_paths` reads them), in the order
/// read. A later object of the same kind, namespace and name replaces an earlier one in its
/// place, as the loader keeps the later (and warns). Only for files that loaded without errors.
pub fn read_objects(paths: &[PathBuf]) -> Result<Vec<Object>, String> {
    let mut objects: Vec<Object> = Vec::new();
    let mut seen: HashMap<(Kind, String, String), usize> = HashMap::new();
    for path in paths {
        let files = policy_files(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for file in files {
            let text = fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let format = Format::from_path(&file.display().to_string());
            for value in smi_objects(&text, format) {
                let Some(object) = Object::new(value) else {
                    continue;
                };
                let id = (object.kind, object.namespace.clone(), object.name.clone());
                match seen.get(&id) {
                    Some(&index) => objects[index] = object,
                    None => {
                        seen.insert(id, objects.len());
                        objects.push(object);
                    }
                }
            }
        }
    }
    Ok(objects)
}
