//! A model of the namespace that the conformance suite's kuttl steps change: `NN-install.yaml`
//! applies, a TestStep's `delete:` list deletes, and `NN-assert.yaml` / `NN-errors.yaml` are
//! checked against it.

use smi_core::model::{HttpRouteGroup, L4Route, Meta, PolicySet, TrafficSplit, TrafficTarget};
use smi_core::{Loaded, Options, Snapshot};

use crate::{data_text, load_data, show};

/// One SMI resource of the cluster model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    Target(TrafficTarget),
    Group(HttpRouteGroup),
    L4(L4Route),
    Split(TrafficSplit),
}

impl Object {
    pub fn meta(&self) -> &Meta {
        match self {
            Object::Target(t) => &t.meta,
            Object::Group(g) => &g.meta,
            Object::L4(r) => &r.meta,
            Object::Split(s) => &s.meta,
        }
    }

    /// The Kubernetes kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Target(_) => "TrafficTarget",
            Object::Group(_) => "HTTPRouteGroup",
            Object::L4(r) => r.protocol.route_kind().kind_name(),
            Object::Split(_) => "TrafficSplit",
        }
    }

    fn is(&self, kind: &str, namespace: &str, name: &str) -> bool {
        self.kind() == kind && self.meta().namespace == namespace && self.meta().name == name
    }

    /// The same object, read from another place: equal in everything but where it came from.
    fn with_origin_of(&self, other: &Object) -> Object {
        let mut copy = self.clone();
        let origin = other.meta().origin.clone();
        match &mut copy {
            Object::Target(t) => t.meta.origin = origin,
            Object::Group(g) => g.meta.origin = origin,
            Object::L4(r) => r.meta.origin = origin,
            Object::Split(s) => s.meta.origin = origin,
        }
        copy
    }
}

/// Every resource of a policy set, targets first.
pub fn objects(policy: PolicySet) -> Vec<Object> {
    let mut out: Vec<Object> = policy.targets.into_iter().map(Object::Target).collect();
    out.extend(policy.route_groups.into_iter().map(Object::Group));
    out.extend(policy.l4_routes.into_iter().map(Object::L4));
    out.extend(policy.splits.into_iter().map(Object::Split));
    out
}

/// The SMI objects of one namespace's API, as kuttl steps change it: `apply` creates or replaces
/// by kind and name, `delete` removes, and the kuttl assert/errors files are checked against it.
#[derive(Debug, Default)]
pub struct Cluster {
    objects: Vec<Object>,
}

impl Cluster {
    /// Applies `data/<rel>`: every SMI object in it is created or replaced. Returns the load, which
    /// must have no errors, for inspecting its warnings and skipped count.
    pub fn apply(&mut self, rel: &str) -> Loaded {
        let loaded = load_data(rel);
        assert!(loaded.is_valid(), "{rel} should load:\n{}", show(&loaded));
        for object in objects(loaded.policy.clone()) {
            let (kind, meta) = (object.kind(), object.meta());
            self.objects
                .retain(|o| !o.is(kind, &meta.namespace, &meta.name));
            self.objects.push(object);
        }
        loaded
    }

    /// Deletes one object; whether it existed.
    pub fn delete(&mut self, kind: &str, namespace: &str, name: &str) -> bool {
        let before = self.objects.len();
        self.objects.retain(|o| !o.is(kind, namespace, name));
        self.objects.len() < before
    }

    /// Runs the `delete:` list of a kuttl TestStep file; returns how many objects were deleted.
    pub fn run_test_step_deletes(&mut self, rel: &str) -> usize {
        let refs = test_step_deletes(&data_text(rel));
        assert!(!refs.is_empty(), "{rel} deletes nothing");
        refs.iter()
            .filter(|[kind, namespace, name]| self.delete(kind, namespace, name))
            .count()
    }

    /// kuttl `NN-assert.yaml`: every SMI object in the file exists here with the same content.
    pub fn assert_present(&self, rel: &str) {
        let expected = objects(load_data(rel).policy);
        assert!(!expected.is_empty(), "{rel} asserts no SMI object");
        for want in &expected {
            let found = self
                .objects
                .iter()
                .find(|o| o.is(want.kind(), &want.meta().namespace, &want.meta().name));
            match found {
                Some(have) => {
                    assert_eq!(&want.with_origin_of(have), have, "{rel}: content differs")
                }
                None => panic!("{rel}: {} {} is missing", want.kind(), want.meta().name),
            }
        }
    }

    /// kuttl `NN-errors.yaml`: no SMI object in the file exists here.
    pub fn assert_absent(&self, rel: &str) {
        let unwanted = objects(load_data(rel).policy);
        assert!(!unwanted.is_empty(), "{rel} names no SMI object");
        for object in &unwanted {
            let (kind, meta) = (object.kind(), object.meta());
            assert!(
                !self
                    .objects
                    .iter()
                    .any(|o| o.is(kind, &meta.namespace, &meta.name)),
                "{rel}: {kind} {} still exists",
                meta.name
            );
        }
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    pub fn policy(&self) -> PolicySet {
        let mut policy = PolicySet::default();
        for object in self.objects.iter().cloned() {
            match object {
                Object::Target(t) => policy.targets.push(t),
                Object::Group(g) => policy.route_groups.push(g),
                Object::L4(r) => policy.l4_routes.push(r),
                Object::Split(s) => policy.splits.push(s),
            }
        }
        policy
    }

    /// The policy every workload would compile now.
    pub fn snapshot(&self, options: Options) -> Snapshot {
        Snapshot::compile(self.policy(), options)
    }
}

/// `[kind, namespace, name]` of each entry of a kuttl TestStep's `delete:` list. The list is a
/// flat sequence of `key: value` maps, which is all this reads.
pub fn test_step_deletes(text: &str) -> Vec<[String; 3]> {
    let mut out = Vec::new();
    let mut current: Option<[String; 3]> = None;
    let mut in_delete = false;
    for line in text.lines() {
        if line.trim_end() == "delete:" {
            in_delete = true;
            continue;
        }
        let item = line.trim_start().strip_prefix("- ");
        if !in_delete || !(line.starts_with(' ') || item.is_some()) {
            in_delete = in_delete && line.trim().is_empty();
            continue;
        }
        if item.is_some() {
            out.extend(current.take());
            current = Some(Default::default());
        }
        let body = item.unwrap_or(line.trim_start());
        let (Some(entry), Some((key, value))) = (current.as_mut(), body.split_once(':')) else {
            continue;
        };
        let slot = match key.trim() {
            "kind" => 0,
            "namespace" => 1,
            "name" => 2,
            _ => continue,
        };
        entry[slot] = value.trim().to_owned();
    }
    out.extend(current);
    out
}
