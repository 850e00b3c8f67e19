//! Hash-map keys that can be looked up with borrowed `&str` pairs, so that a decision never
//! allocates a key.

use std::hash::{Hash, Hasher};

use hashbrown::{Equivalent, HashMap, HashSet};

use crate::identity::ServiceAccount;

/// `namespace/name` of a ServiceAccount or a Service, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NameKey {
    pub namespace: Box<str>,
    pub name: Box<str>,
}

/// The borrowed form of [`NameKey`]; hashes identically.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NameRef<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
}

impl NameKey {
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl Hash for NameKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        NameRef {
            namespace: &self.namespace,
            name: &self.name,
        }
        .hash(state);
    }
}

impl Hash for NameRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.namespace.hash(state);
        self.name.hash(state);
    }
}

impl Equivalent<NameKey> for NameRef<'_> {
    fn equivalent(&self, key: &NameKey) -> bool {
        *self.namespace == *key.namespace && *self.name == *key.name
    }
}

pub(crate) type NameSet = HashSet<NameKey>;
pub(crate) type ServiceMap<V> = HashMap<NameKey, V>;
pub(crate) type PairMap<V> = HashMap<PairKey, V>;

/// A (destination, source) pair of accounts, owned: one lookup per decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PairKey {
    destination: NameKey,
    source: NameKey,
}

impl PairKey {
    pub fn new(destination: &ServiceAccount, source: &ServiceAccount) -> Self {
        Self {
            destination: NameKey::new(&destination.namespace, &destination.name),
            source: NameKey::new(&source.namespace, &source.name),
        }
    }
}

/// The borrowed form of [`PairKey`]; hashes identically.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PairRef<'a> {
    pub destination: NameRef<'a>,
    pub source: NameRef<'a>,
}

impl Hash for PairKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.destination.hash(state);
        self.source.hash(state);
    }
}

impl Hash for PairRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.destination.hash(state);
        self.source.hash(state);
    }
}

impl Equivalent<PairKey> for PairRef<'_> {
    fn equivalent(&self, key: &PairKey) -> bool {
        self.destination.equivalent(&key.destination) && self.source.equivalent(&key.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_lookup_finds_owned_key() {
        let mut map = ServiceMap::new();
        map.insert(NameKey::new("ns", "sa"), 7);
        let hit = map.get(&NameRef {
            namespace: "ns",
            name: "sa",
        });
        assert_eq!(hit, Some(&7));
        // The boundary between the two parts matters: "n"+"ssa" is another key.
        let miss = map.get(&NameRef {
            namespace: "n",
            name: "ssa",
        });
        assert_eq!(miss, None);
    }
}
