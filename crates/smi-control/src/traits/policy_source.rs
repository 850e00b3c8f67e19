//! [`PolicySource`]: where SMI resources come from. A directory of files today; Kubernetes
//! objects or etcd keys next.

use smi_core::Format;

use super::{Changed, WatchGuard};

/// A source of SMI policy: documents, each with its origin, and a signal when they change.
///
/// The contract:
/// - [`documents`](Self::documents) lists everything the source holds now, in the order the
///   documents merge (of two resources with one kind, namespace and name, the later wins). Each
///   origin (a file path, an object reference, an etcd key) is loaded on its own and keeps its
///   last good version while a newer one fails; an origin no longer listed is forgotten. An
///   error means the source as a whole could not be read: the policy published last keeps
///   serving. It may block (files are read); it is called on a thread that may.
/// - [`watch`](Self::watch) calls `changed` after each change, bursts coalesced as the source
///   sees fit (files: 75 ms of quiet), until the guard is dropped.
/// - Nothing is validated here: the control loads every document with `smi_core`'s loader, so
///   a Kubernetes object and a file are held to the same rules.
pub trait PolicySource: Send + Sync + 'static {
    /// What the source is, for logs and the status API (the directory's path).
    fn name(&self) -> &str;

    /// Every document the source holds now.
    fn documents(&self) -> Result<Vec<PolicyDocument>, SourceError>;

    /// Starts calling `changed` whenever the documents may have changed.
    fn watch(&self, changed: Changed) -> Result<WatchGuard, SourceError>;

    /// After each load: the origins that failed, each with its errors (none: every origin
    /// loaded). A source may tell them where they came from (Kubernetes: an Event on the
    /// object); the default tells no one (the status API and the logs have them anyway). It
    /// must not block for long: it runs in the reload.
    fn loaded(&self, failing: &[(String, Vec<String>)]) {
        let _ = failing;
    }
}

/// One origin's policy, before it is loaded.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyDocument {
    /// Where it came from, as diagnostics and the status API name it: a file path today.
    pub origin: String,
    pub content: Content,
}

/// What an origin holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Content {
    /// Text, one or more YAML or JSON documents (a file). Bytes, so that text that is not UTF-8
    /// is refused by the loader with a diagnostic like any other problem.
    Text { bytes: Vec<u8>, format: Format },
    /// One document already parsed (a Kubernetes object, an etcd value).
    Value(serde_json::Value),
    /// The origin exists but cannot be read: why (`cannot read: permission denied`). Its last
    /// good version keeps serving.
    Unreadable(String),
}

/// The source as a whole cannot be read or watched; the message says why
/// (`cannot read: No such file or directory`), the source's name says what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);
