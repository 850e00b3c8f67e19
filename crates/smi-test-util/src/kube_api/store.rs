//! Storage, as etcd under the real server: every object once (whatever version it was written
//! through), one revision counter for all writes, and the history of changes since the last
//! compaction, from which watches replay and lists read the past.

use std::collections::BTreeMap;

use serde_json::Value;

/// Where an object is stored: its resource (group and plural, not version) and its name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Key {
    pub group: String,
    pub plural: String,
    /// "" for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

/// One write: the object before and after (`None` when absent), at `revision`.
#[derive(Clone, Debug)]
pub(super) struct Change {
    pub revision: u64,
    pub key: Key,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

/// The objects, the revision counter and the history.
#[derive(Debug, Default)]
pub(super) struct Store {
    objects: BTreeMap<Key, Value>,
    revision: u64,
    /// History before and at this revision is forgotten.
    compacted: u64,
    history: Vec<Change>,
}

/// A read of the past before the compaction point.
#[derive(Debug, PartialEq)]
pub(super) struct Compacted {
    pub compacted: u64,
}

// === impl Key ===

impl Key {
    pub fn new(group: &str, plural: &str, namespace: &str, name: &str) -> Key {
        Key {
            group: group.to_owned(),
            plural: plural.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// Whether this key belongs to `group`/`plural`, in `namespace` if one is given.
    pub fn within(&self, group: &str, plural: &str, namespace: Option<&str>) -> bool {
        self.group == group
            && self.plural == plural
            && namespace.is_none_or(|ns| self.namespace == ns)
    }
}

// === impl Store ===

impl Store {
    /// The revision of the latest write (0 before any).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    /// The objects of `group`/`plural` (in `namespace`, if given), in key order.
    pub fn range<'a>(
        &'a self,
        group: &'a str,
        plural: &'a str,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a Key, &'a Value)> + 'a {
        self.objects
            .iter()
            .filter(move |(k, _)| k.within(group, plural, namespace))
    }

    /// Every key, in order.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.objects.keys()
    }

    /// Stores `new` under `key` (removes it when `None`) at the next revision, which it writes
    /// into `metadata.resourceVersion`; returns the stored object.
    pub fn write(&mut self, key: Key, new: Option<Value>) -> (u64, Option<Value>) {
        self.revision += 1;
        let revision = self.revision;
        let new = new.map(|mut object| {
            object["metadata"]["resourceVersion"] = Value::String(revision.to_string());
            object
        });
        let old = match &new {
            Some(object) => self.objects.insert(key.clone(), object.clone()),
            None => self.objects.remove(&key),
        };
        self.history.push(Change {
            revision,
            key,
            old,
            new: new.clone(),
        });
        (revision, new)
    }

    /// Forgets the history up to now: reads of the past before now are [`Compacted`].
    pub fn compact(&mut self) {
        self.compacted = self.revision;
        self.history.clear();
    }

    /// The changes after `revision`, oldest first.
    pub fn changes_since(&self, revision: u64) -> Result<&[Change], Compacted> {
        if revision < self.compacted {
            return Err(Compacted {
                compacted: self.compacted,
            });
        }
        let at = self.history.partition_point(|c| c.revision <= revision);
        Ok(&self.history[at..])
    }

    /// The objects of `group`/`plural` (in `namespace`) as they were at `revision`, in key
    /// order: the current ones, with the later changes undone.
    pub fn at(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        revision: u64,
    ) -> Result<BTreeMap<Key, Value>, Compacted> {
        let later = self.changes_since(revision)?;
        let mut objects: BTreeMap<Key, Value> = self
            .range(group, plural, namespace)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for change in later
            .iter()
            .rev()
            .filter(|c| c.key.within(group, plural, namespace))
        {
            match &change.old {
                Some(old) => objects.insert(change.key.clone(), old.clone()),
                None => objects.remove(&change.key),
            };
        }
        Ok(objects)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(name: &str, image: &str) -> (Key, Value) {
        let key = Key::new("", "pods", "shop", name);
        (
            key,
            json!({"metadata": {"name": name}, "spec": {"image": image}}),
        )
    }

    #[test]
    fn writes_number_revisions_and_reads_the_past_until_compacted() {
        let mut store = Store::default();
        let (a, a1) = pod("a", "1");
        let (b, b1) = pod("b", "1");
        store.write(a.clone(), Some(a1));
        store.write(b.clone(), Some(b1));
        let (_, a2) = pod("a", "2");
        let (rev, stored) = store.write(a.clone(), Some(a2));
        assert_eq!(rev, 3);
        assert_eq!(stored.expect("stored")["metadata"]["resourceVersion"], "3");
        store.write(b.clone(), None);

        let at2 = store
            .at("", "pods", Some("shop"), 2)
            .expect("not compacted");
        assert_eq!(at2.len(), 2);
        assert_eq!(at2[&a]["spec"]["image"], "1");
        assert_eq!(at2[&a]["metadata"]["resourceVersion"], "1");
        let now: Vec<&Key> = store.range("", "pods", None).map(|(k, _)| k).collect();
        assert_eq!(now, [&a]);
        assert_eq!(store.changes_since(2).expect("kept").len(), 2);

        store.compact();
        assert_eq!(
            store.changes_since(2).expect_err("compacted"),
            Compacted { compacted: 4 }
        );
        assert!(store.changes_since(4).expect("now is kept").is_empty());
        assert_eq!(store.at("", "pods", None, 4).expect("now").len(), 1);
    }
}
