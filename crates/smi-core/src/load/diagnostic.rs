//! Diagnostics: errors and warnings that name the file, the document, the resource and the field.

use std::fmt;

use crate::model::Origin;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Warning,
    Error,
}

/// `Kind namespace/name`, as far as it is known when the problem is found.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResourceId {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.kind)?;
        match (&self.namespace, &self.name) {
            (Some(ns), Some(name)) => write!(f, " {ns}/{name}"),
            (None, Some(name)) => write!(f, " {name}"),
            _ => Ok(()),
        }
    }
}

/// One problem found while loading or compiling policy.
///
/// Displays as `path:doc N: Kind namespace/name: field: message`, leaving out what is unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub origin: Option<Origin>,
    pub resource: Option<ResourceId>,
    pub field: Option<String>,
    pub message: String,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some(origin) = &self.origin {
            write!(f, "{origin}")?;
            sep = ": ";
        }
        if let Some(resource) = &self.resource {
            write!(f, "{sep}{resource}")?;
            sep = ": ";
        }
        if let Some(field) = &self.field {
            write!(f, "{sep}{field}")?;
            sep = ": ";
        }
        write!(f, "{sep}{}", self.message)
    }
}

/// Collects diagnostics about one resource, so each call names only the field and the message.
#[derive(Debug)]
pub(crate) struct Reporter<'a> {
    pub origin: Option<Origin>,
    pub resource: Option<ResourceId>,
    pub sink: &'a mut Vec<Diagnostic>,
}

impl Reporter<'_> {
    pub fn error(&mut self, field: impl Into<Option<String>>, message: impl Into<String>) {
        self.push(Severity::Error, field.into(), message.into());
    }

    pub fn warn(&mut self, field: impl Into<Option<String>>, message: impl Into<String>) {
        self.push(Severity::Warning, field.into(), message.into());
    }

    fn push(&mut self, severity: Severity, field: Option<String>, message: String) {
        self.sink.push(Diagnostic {
            severity,
            origin: self.origin.clone(),
            resource: self.resource.clone(),
            field,
            message,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_every_known_part_in_order() {
        let d = Diagnostic {
            severity: Severity::Error,
            origin: Some(Origin {
                source: "policy/split.yaml".into(),
                document: 2,
            }),
            resource: Some(ResourceId {
                kind: "TrafficSplit".into(),
                namespace: Some("default".into()),
                name: Some("canary".into()),
            }),
            field: Some("spec.backends[1].weight".into()),
            message: "must not be negative".into(),
        };
        assert_eq!(
            d.to_string(),
            "policy/split.yaml:doc 2: TrafficSplit default/canary: spec.backends[1].weight: must not be negative"
        );
    }

    #[test]
    fn leaves_out_unknown_parts() {
        let d = Diagnostic {
            severity: Severity::Error,
            origin: Some(Origin {
                source: "x.yaml".into(),
                document: 1,
            }),
            resource: None,
            field: None,
            message: "malformed YAML".into(),
        };
        assert_eq!(d.to_string(), "x.yaml:doc 1: malformed YAML");
    }
}
