//! One [`PolicyDocument`] into a [`Loader`]: the same for every source, so that a file, a
//! Kubernetes object and an etcd value are read by one set of rules.

use smi_core::load::{Diagnostic, Loader, Severity};

use crate::traits::{Content, PolicyDocument};

pub fn add_document(loader: &mut Loader, document: &PolicyDocument) {
    let origin = &document.origin;
    match &document.content {
        Content::Text { bytes, format } => match std::str::from_utf8(bytes) {
            Ok(text) => loader.add_text(origin, text, *format),
            Err(_) => loader.add_diagnostic(unreadable(origin, "not UTF-8 text")),
        },
        Content::Value(value) => loader.add_value(origin, value),
        Content::Unreadable(why) => loader.add_diagnostic(unreadable(origin, why)),
    }
}

/// An error about an origin as a whole (`policy/a.yaml: cannot read: ...`).
pub fn unreadable(origin: &str, message: &str) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        origin: None,
        resource: None,
        field: None,
        message: format!("{origin}: {message}"),
    }
}
