//! [`EtcdPolicy`]: SMI resources in etcd, one per key (`policy/<Kind>/<namespace>/<name>`,
//! JSON), as `smictl apply --etcd` writes them. Each key is one origin: a value that does not
//! load keeps its last good version serving, as a broken file does.

use std::sync::Arc;

use super::mirror::{Class, Mirror};
use crate::traits::{Changed, Content, PolicyDocument, PolicySource, SourceError, WatchGuard};

#[derive(Clone, Debug)]
pub struct EtcdPolicy {
    mirror: Arc<Mirror>,
    name: String,
}

impl EtcdPolicy {
    pub fn new(mirror: Arc<Mirror>) -> Self {
        Self {
            name: format!("etcd:{}", mirror.keys().policy_prefix()),
            mirror,
        }
    }
}

impl PolicySource for EtcdPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    /// Every resource the mirror holds, in key order, named `etcd:<key>`.
    fn documents(&self) -> Result<Vec<PolicyDocument>, SourceError> {
        Ok(self
            .mirror
            .entries(&self.mirror.keys().policy_prefix())
            .into_iter()
            .map(|(key, entry)| PolicyDocument {
                origin: format!("etcd:{key}"),
                content: match serde_json::from_slice(&entry.value) {
                    Ok(value) => Content::Value(value),
                    Err(e) => Content::Unreadable(format!("not JSON: {e}")),
                },
            })
            .collect())
    }

    fn watch(&self, changed: Changed) -> Result<WatchGuard, SourceError> {
        Ok(self.mirror.listen(Class::Policy, changed))
    }
}
