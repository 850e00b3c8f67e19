//! `labelSelector` and `fieldSelector`, parsed and matched as the real server does: label
//! requirements `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, `k>n`, `k<n`;
//! field terms `f=v`, `f==v`, `f!=v` on the fields a resource supports (`metadata.name` and
//! `metadata.namespace` on every resource). Backslash escapes in field values are not modelled.

use serde_json::Value;

use super::status::ApiError;

/// The objects a list or watch asks for.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Selector {
    labels: Vec<Requirement>,
    fields: Vec<FieldTerm>,
}

#[derive(Clone, Debug, PartialEq)]
struct Requirement {
    key: String,
    op: Op,
}

#[derive(Clone, Debug, PartialEq)]
enum Op {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
    Gt(i64),
    Lt(i64),
}

#[derive(Clone, Debug, PartialEq)]
struct FieldTerm {
    path: String,
    equal: bool,
    value: String,
}

// === impl Selector ===

impl Selector {
    /// Parses both selectors; `fields` are the field labels the resource supports besides
    /// `metadata.name` and `metadata.namespace`.
    pub fn parse(
        labels: Option<&str>,
        fields: Option<&str>,
        supported: &[String],
    ) -> Result<Selector, ApiError> {
        let labels = match labels {
            Some(s) => parse_labels(s)
                .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?,
            None => Vec::new(),
        };
        let fields = match fields {
            Some(s) => parse_fields(s).map_err(ApiError::bad_request)?,
            None => Vec::new(),
        };
        for term in &fields {
            let known = ["metadata.name", "metadata.namespace"].contains(&term.path.as_str())
                || supported.contains(&term.path);
            if !known {
                let message = format!("field label not supported: {}", term.path);
                return Err(ApiError::bad_request(message));
            }
        }
        Ok(Selector { labels, fields })
    }

    /// Whether `object` is selected.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object);
        let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        let labels_match = self.labels.iter().all(|r| match (&r.op, label(&r.key)) {
            (Op::In(values), Some(v)) => values.iter().any(|x| x == v),
            (Op::In(_), None) => false,
            (Op::NotIn(values), v) => v.is_none_or(|v| values.iter().all(|x| x != v)),
            (Op::Exists, v) => v.is_some(),
            (Op::NotExists, v) => v.is_none(),
            (Op::Gt(n), v) => v
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            (Op::Lt(n), v) => v
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        });
        labels_match
            && self
                .fields
                .iter()
                .all(|t| (field(object, &t.path) == t.value) == t.equal)
    }
}

/// A field of `object` as a field selector sees it: scalars as text, absent as "".
fn field(object: &Value, path: &str) -> String {
    let mut v = object;
    for part in path.split('.') {
        match v.get(part) {
            Some(next) => v = next,
            None => return String::new(),
        }
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn parse_labels(s: &str) -> Result<Vec<Requirement>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    split_top(s).into_iter().map(parse_requirement).collect()
}

fn parse_requirement(text: &str) -> Result<Requirement, String> {
    let text = text.trim();
    if let Some(key) = text.strip_prefix('!') {
        let key = key.trim();
        check_key(key, text)?;
        return Ok(Requirement {
            key: key.to_owned(),
            op: Op::NotExists,
        });
    }
    let end = text
        .find(|c: char| c.is_whitespace() || "=!<>(".contains(c))
        .unwrap_or(text.len());
    let (key, rest) = (&text[..end], text[end..].trim_start());
    check_key(key, text)?;
    let op = if rest.is_empty() {
        Op::Exists
    } else if let Some(v) = rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')) {
        Op::In(vec![value(v, text)?])
    } else if let Some(v) = rest.strip_prefix("!=") {
        Op::NotIn(vec![value(v, text)?])
    } else if let Some(v) = rest.strip_prefix('>') {
        Op::Gt(integer(v, text)?)
    } else if let Some(v) = rest.strip_prefix('<') {
        Op::Lt(integer(v, text)?)
    } else if let Some(set) = rest.strip_prefix("notin") {
        Op::NotIn(values(set, text)?)
    } else if let Some(set) = rest.strip_prefix("in") {
        Op::In(values(set, text)?)
    } else {
        return Err(format!(
            "found '{rest}', expected: in, notin, =, ==, !=, gt, lt"
        ));
    };
    Ok(Requirement {
        key: key.to_owned(),
        op,
    })
}

fn check_key(key: &str, text: &str) -> Result<(), String> {
    let valid = |c: char| c.is_ascii_alphanumeric() || "-_./".contains(c);
    if key.is_empty() || !key.chars().all(valid) {
        return Err(format!("invalid label key in {text:?}"));
    }
    Ok(())
}

fn value(v: &str, text: &str) -> Result<String, String> {
    let v = v.trim();
    let valid = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    if v.len() > 63 || !v.chars().all(valid) {
        return Err(format!("invalid label value {v:?} in {text:?}"));
    }
    Ok(v.to_owned())
}

fn integer(v: &str, text: &str) -> Result<i64, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("for 'gt', 'lt' operators, the value must be an integer in {text:?}"))
}

fn values(set: &str, text: &str) -> Result<Vec<String>, String> {
    let set = set.trim();
    let inner = set
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("found '{set}', expected: '(' in {text:?}"))?;
    inner.split(',').map(|v| value(v, text)).collect()
}

fn parse_fields(s: &str) -> Result<Vec<FieldTerm>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|term| {
            let (path, equal, value) = if let Some((p, v)) = term.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = term.split_once("==") {
                (p, true, v)
            } else if let Some((p, v)) = term.split_once('=') {
                (p, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                ));
            };
            Ok(FieldTerm {
                path: path.trim().to_owned(),
                equal,
                value: value.trim().to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(labels: Value) -> Value {
        json!({"metadata": {"name": "web-1", "namespace": "shop", "labels": labels},
               "spec": {"nodeName": "n1", "hostNetwork": false}})
    }

    #[test]
    fn label_selectors_match_as_the_real_server() {
        let web = object(
            json!({"app": "web", "tier": "front", "kubernetes.io/service-name": "web", "rank": "3"}),
        );
        let bare = object(json!({}));
        let table = [
            ("", true, true),
            ("app=web", true, false),
            ("app==web", true, false),
            ("app!=web", false, true),
            ("app=db", false, false),
            ("kubernetes.io/service-name=web", true, false),
            ("app in (db, web)", true, false),
            ("app in (db)", false, false),
            ("app notin (db,web)", false, true),
            ("app", true, false),
            ("!app", false, true),
            ("app=web,tier=front", true, false),
            ("app in (web),tier notin (back)", true, false),
            ("app=web,tier=back", false, false),
            ("rank>2", true, false),
            ("rank<3", false, false),
        ];
        for (text, on_web, on_bare) in table {
            let s = Selector::parse(Some(text), None, &[]).expect(text);
            assert_eq!(s.matches(&web), on_web, "{text} on web");
            assert_eq!(s.matches(&bare), on_bare, "{text} on bare");
        }
    }

    #[test]
    fn malformed_label_selectors_are_bad_requests() {
        for text in ["app in web", "app ~ web", "=web", "app in (a b)", "rank>x"] {
            let e = Selector::parse(Some(text), None, &[]).expect_err(text);
            assert_eq!(e.code, 400, "{text}");
            assert!(
                e.message.starts_with("unable to parse requirement"),
                "{text}: {}",
                e.message
            );
        }
    }

    #[test]
    fn field_selectors_match_supported_fields_only() {
        let pod = object(json!({}));
        let node = ["spec.nodeName".to_owned(), "spec.hostNetwork".to_owned()];
        let table = [
            ("metadata.name=web-1", true),
            ("metadata.name==web-2", false),
            ("metadata.name!=web-2", true),
            ("metadata.namespace=shop,spec.nodeName=n1", true),
            ("spec.hostNetwork=false", true),
        ];
        for (text, expected) in table {
            let s = Selector::parse(None, Some(text), &node).expect(text);
            assert_eq!(s.matches(&pod), expected, "{text}");
        }
        let e = Selector::parse(None, Some("spec.color=red"), &node).expect_err("unsupported");
        assert_eq!(e.message, "field label not supported: spec.color");
    }
}
