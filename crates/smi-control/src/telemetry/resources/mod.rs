//! The TrafficMetrics API's answers, from the store and the current policy.
//!
//! - A deployment's, pod's or namespace's own metrics are its inbound traffic, as its servers
//!   measured it (`edge: {direction: from, side: server, resource: {}}`).
//! - Its `edges` are one item per (peer, direction): `to` items from its outbound reports
//!   (`side: client`), `from` items from its inbound ones (`side: server`). The peer is the
//!   peer's Deployment when its certificate names it, else its ServiceAccount, else (an
//!   outbound call that reached no one) the Service called.
//! - A TrafficSplit's items are one per backend in the current policy, from the outbound reports
//!   whose service is the split's apex and whose backend is that backend (`side: client`).

mod kind;
mod object;

pub use kind::{Answer, ApiError, DEFAULT_WINDOW, Kind, resource_list, window};
pub use object::{rfc3339, self_link};

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use smi_core::model::{PolicySet, TrafficSplit};
use smi_core::telemetry::{Direction as Recorded, Workload};

use super::api_types::{
    API_VERSION, BASE_PATH, Backend, Direction, Edge, ObjectMeta, ObjectReference, Side,
    TrafficMetrics, TrafficMetricsList,
};
use super::go_duration;
use super::query::Totals;
use super::store::TelemetryStore;
use object::{
    apex, direction, list, metrics, not_found, object, peer, resource_of, selects, whole_inbound,
};

/// Answers over one window, from one state of the store and one policy.
#[derive(Debug)]
pub struct Answers<'a> {
    pub store: &'a TelemetryStore,
    pub policy: &'a PolicySet,
    pub window: Duration,
}

impl Answers<'_> {
    /// `/{kind}` (`namespace` `None`) or `/namespaces/{ns}/{kind}`.
    pub fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
    ) -> Result<TrafficMetricsList, ApiError> {
        let in_namespace = |w: &Workload| namespace.is_none_or(|ns| w.namespace == ns);
        let items = match kind {
            Kind::Namespaces if namespace.is_some() => {
                return Err(ApiError::NotFound(
                    "namespaces are not namespaced: GET /namespaces/{name}".to_owned(),
                ));
            }
            Kind::TrafficSplits => {
                let splits: Vec<&TrafficSplit> = self
                    .policy
                    .splits
                    .iter()
                    .filter(|s| namespace.is_none_or(|ns| s.meta.namespace == ns))
                    .collect();
                self.split_items(&splits)
            }
            _ => self.own_metrics(kind, in_namespace),
        };
        let mut link = BASE_PATH.to_owned();
        if let Some(ns) = namespace {
            link.push_str(&format!("/namespaces/{ns}"));
        }
        link.push_str(&format!("/{}", kind.plural()));
        let resource = ObjectReference::new(kind.object_kind(), namespace.unwrap_or(""), "");
        Ok(list(resource, link, items))
    }

    /// `/namespaces/{ns}/{kind}/{name}`, and `/namespaces/{name}` (kind namespaces, `namespace`
    /// empty).
    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Result<Answer, ApiError> {
        if kind == Kind::TrafficSplits {
            return self.split(namespace, name, false).map(Answer::List);
        }
        let object = object(kind, namespace, name);
        self.known(kind, &object)?;
        let mut items = self.own_metrics(kind, |w| selects(kind, &object, w));
        match items.pop() {
            Some(item) => Ok(Answer::One(Box::new(item))),
            None => Err(not_found(kind, &object)),
        }
    }

    /// `/namespaces/{ns}/{kind}/{name}/edges`, and `/namespaces/{name}/edges`.
    pub fn edges(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<TrafficMetricsList, ApiError> {
        if kind == Kind::TrafficSplits {
            return self.split(namespace, name, true);
        }
        let object = object(kind, namespace, name);
        self.known(kind, &object)?;
        let totals = self.store.totals(
            self.window,
            |w| selects(kind, &object, w),
            |_, key| Some((direction(key).0, peer(key)?)),
        );
        let items = totals
            .into_iter()
            .map(|((dir, peer), t)| {
                let side = if dir == Direction::To {
                    Side::Client
                } else {
                    Side::Server
                };
                let edge = Edge {
                    direction: dir,
                    side,
                    resource: Some(peer),
                };
                self.item(object.clone(), edge, None, &t, true)
            })
            .collect();
        Ok(list(
            object.clone(),
            format!("{}/edges", self_link(&object)),
            items,
        ))
    }

    /// Each resource of `kind` among the pods `keep` selects, with its inbound traffic.
    fn own_metrics(&self, kind: Kind, keep: impl Fn(&Workload) -> bool) -> Vec<TrafficMetrics> {
        let known: BTreeSet<ObjectReference> = self
            .store
            .reporters(&keep)
            .iter()
            .map(|w| resource_of(kind, w))
            .collect();
        let totals = self.store.totals(self.window, &keep, |w, key| {
            (key.direction == Recorded::Inbound).then(|| resource_of(kind, w))
        });
        let none = Totals::default();
        known
            .into_iter()
            .map(|r| {
                let t = totals.get(&r).unwrap_or(&none);
                self.item(r, whole_inbound(), None, t, false)
            })
            .collect()
    }

    /// A TrafficSplit's items, per backend.
    fn split(
        &self,
        namespace: &str,
        name: &str,
        edges: bool,
    ) -> Result<TrafficMetricsList, ApiError> {
        let object = object(Kind::TrafficSplits, namespace, name);
        let split = self
            .policy
            .splits
            .iter()
            .find(|s| s.meta.namespace == namespace && s.meta.name == name)
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "trafficsplits {name:?} not found in namespace {namespace:?}: the current policy has no such TrafficSplit"
                ))
            })?;
        let mut link = self_link(&object);
        if edges {
            link.push_str("/edges");
        }
        Ok(list(object, link, self.split_items(&[split])))
    }

    fn split_items(&self, splits: &[&TrafficSplit]) -> Vec<TrafficMetrics> {
        let apexes: HashSet<String> = splits.iter().map(|s| apex(s)).collect();
        let totals: BTreeMap<(String, String), Totals> = self.store.totals(
            self.window,
            |_| true,
            |_, key| {
                let split = key.direction == Recorded::Outbound
                    && !key.backend.is_empty()
                    && apexes.contains(&*key.service);
                split.then(|| (key.service.to_string(), key.backend.to_string()))
            },
        );
        let none = Totals::default();
        let mut items = Vec::new();
        for split in splits {
            let ns = &split.meta.namespace;
            let object = object(Kind::TrafficSplits, ns, &split.meta.name);
            for b in &split.backends {
                let t = totals
                    .get(&(apex(split), format!("{ns}/{}", b.service)))
                    .unwrap_or(&none);
                let edge = Edge {
                    direction: Direction::To,
                    side: Side::Client,
                    resource: Some(ObjectReference::new("Service", ns, &b.service)),
                };
                let backend = Backend {
                    apex: split.service.clone(),
                    name: b.service.clone(),
                    weight: b.weight,
                };
                items.push(self.item(object.clone(), edge, Some(backend), t, false));
            }
        }
        items
    }

    /// 404 unless some pod of `object` has reported within the store's span.
    fn known(&self, kind: Kind, object: &ObjectReference) -> Result<(), ApiError> {
        if self
            .store
            .reporters(|w| selects(kind, object, w))
            .is_empty()
        {
            return Err(not_found(kind, object));
        }
        Ok(())
    }

    fn item(
        &self,
        resource: ObjectReference,
        edge: Edge,
        backend: Option<Backend>,
        totals: &Totals,
        edges: bool,
    ) -> TrafficMetrics {
        let now = rfc3339(self.store.now());
        let mut link = self_link(&resource);
        if edges {
            link.push_str("/edges");
        }
        TrafficMetrics {
            kind: "TrafficMetrics".to_owned(),
            api_version: API_VERSION.to_owned(),
            metadata: ObjectMeta {
                name: resource.name.clone(),
                namespace: resource.namespace.clone(),
                creation_timestamp: now.clone(),
                self_link: link,
            },
            timestamp: now,
            window: go_duration::format(self.window),
            resource,
            edge: Some(edge),
            backend,
            metrics: metrics(totals),
        }
    }
}
