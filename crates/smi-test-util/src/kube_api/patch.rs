//! Patch bodies: JSON merge patch (RFC 7386) and JSON patch (RFC 6902). Server-side apply and
//! strategic merge patch are answered as merge patches (see the module docs).

use serde_json::{Map, Value};

/// Applies a JSON merge patch: objects merge key by key, `null` removes, anything else replaces.
pub(super) fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Applies a JSON patch (a list of `add`, `remove`, `replace`, `move`, `copy`, `test`
/// operations), all or nothing.
pub(super) fn json(target: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops
        .as_array()
        .ok_or("a JSON patch is a list of operations")?;
    let mut work = target.clone();
    for op in ops {
        let name = op["op"].as_str().ok_or("an operation without \"op\"")?;
        let path = op["path"].as_str().ok_or("an operation without \"path\"")?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or(format!("{name} {path}: no value"))
        };
        match name {
            "add" => add(&mut work, path, value()?)?,
            "remove" => drop(remove(&mut work, path)?),
            "replace" => {
                remove(&mut work, path)?;
                add(&mut work, path, value()?)?;
            }
            "move" | "copy" => {
                let from = op["from"]
                    .as_str()
                    .ok_or(format!("{name} {path}: no from"))?;
                let moved = if name == "move" {
                    remove(&mut work, from)?
                } else {
                    work.pointer(from)
                        .cloned()
                        .ok_or(format!("no {from} to copy"))?
                };
                add(&mut work, path, moved)?;
            }
            "test" => {
                if work.pointer(path) != Some(&value()?) {
                    return Err(format!("test of {path} failed"));
                }
            }
            other => return Err(format!("unknown JSON patch operation {other:?}")),
        }
    }
    *target = work;
    Ok(())
}

/// The parent of a JSON pointer and its last token, unescaped.
fn split(path: &str) -> Result<(&str, String), String> {
    let at = path
        .rfind('/')
        .ok_or(format!("{path:?} is not a JSON pointer"))?;
    let token = path[at + 1..].replace("~1", "/").replace("~0", "~");
    Ok((&path[..at], token))
}

fn add(target: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *target = value;
        return Ok(());
    }
    let (parent, token) = split(path)?;
    match target.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(token, value);
            Ok(())
        }
        Some(Value::Array(list)) => {
            let at = if token == "-" {
                list.len()
            } else {
                token.parse().map_err(|_| format!("bad index in {path}"))?
            };
            if at > list.len() {
                return Err(format!("index out of range in {path}"));
            }
            list.insert(at, value);
            Ok(())
        }
        _ => Err(format!("no parent for {path}")),
    }
}

fn remove(target: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, token) = split(path)?;
    let removed = match target.pointer_mut(parent) {
        Some(Value::Object(map)) => map.remove(&token),
        Some(Value::Array(list)) => match token.parse::<usize>() {
            Ok(i) if i < list.len() => Some(list.remove(i)),
            _ => None,
        },
        _ => None,
    };
    removed.ok_or(format!("nothing at {path} to remove"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patches_merge_objects_and_remove_nulls() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "list": [1, 2], "gone": true});
        merge(
            &mut v,
            &json!({"a": {"c": null, "d": 3}, "list": [3], "gone": null}),
        );
        assert_eq!(v, json!({"a": {"b": 1, "d": 3}, "list": [3]}));
    }

    #[test]
    fn json_patches_apply_all_or_nothing() {
        let mut v = json!({"spec": {"ports": [80]}, "metadata": {"labels": {"a/b": "x"}}});
        let ops = json!([
            {"op": "add", "path": "/spec/ports/-", "value": 443},
            {"op": "replace", "path": "/metadata/labels/a~1b", "value": "y"},
            {"op": "copy", "from": "/spec/ports/0", "path": "/spec/first"},
            {"op": "test", "path": "/spec/first", "value": 80},
        ]);
        json(&mut v, &ops).expect("applies");
        assert_eq!(
            v,
            json!({"spec": {"ports": [80, 443], "first": 80}, "metadata": {"labels": {"a/b": "y"}}})
        );
        let before = v.clone();
        let failing = json!([{"op": "remove", "path": "/spec/first"}, {"op": "test", "path": "/spec/ports/0", "value": 1}]);
        assert!(json(&mut v, &failing).is_err());
        assert_eq!(v, before, "a failed patch changes nothing");
    }
}
