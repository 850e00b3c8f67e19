//! `route`: root service -> TrafficSplit -> backend.

use std::sync::Arc;

use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;

use super::Snapshot;
use super::keys::NameRef;
use super::matcher::CompiledGroup;
use super::request::HttpRequest;
use super::service::ServiceName;
use crate::model::{Backend, Meta, TrafficSplit};

/// A TrafficSplit ready to pick backends: O(log n) per pick, no lock, no allocation.
#[derive(Debug)]
pub struct CompiledSplit {
    meta: Meta,
    root: String,
    backends: Box<[Backend]>,
    total: u64,
    /// `None` when no backend has weight (every request then goes to the root service).
    sampler: Option<WeightedIndex<u64>>,
    /// `None`: every request is split. `Some`: only requests that match one of these groups
    /// (an empty list, when every named group is missing, matches nothing).
    matches: Option<Box<[Arc<CompiledGroup>]>>,
}

impl CompiledSplit {
    pub(crate) fn new(split: &TrafficSplit, matches: Option<Box<[Arc<CompiledGroup>]>>) -> Self {
        let total = split
            .backends
            .iter()
            .map(|b| b.weight)
            .fold(0u64, u64::saturating_add);
        Self {
            meta: split.meta.clone(),
            root: split.service.clone(),
            backends: split.backends.clone().into_boxed_slice(),
            total,
            sampler: WeightedIndex::new(split.backends.iter().map(|b| b.weight)).ok(),
            matches,
        }
    }

    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The root service name (in the split's namespace).
    pub fn root(&self) -> &str {
        &self.root
    }

    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// The share of requests backend `i` receives (weights are relative).
    pub fn probability(&self, i: usize) -> f64 {
        match (self.backends.get(i), self.total) {
            (Some(b), total) if total > 0 => b.weight as f64 / total as f64,
            _ => 0.0,
        }
    }

    /// Picks a backend in proportion to its weight; a weight of 0 is never picked.
    pub fn pick<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> Option<&Backend> {
        let sampler = self.sampler.as_ref()?;
        self.backends.get(sampler.sample(rng))
    }

    fn admits(&self, request: Option<&HttpRequest<'_>>) -> bool {
        match (&self.matches, request) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(groups), Some(req)) => groups.iter().any(|g| g.first_match(None, req).is_some()),
        }
    }
}

/// Where requests to a service go.
#[derive(Clone, Copy, Debug)]
pub enum Route<'a> {
    /// No TrafficSplit has this root: the service's own endpoints.
    Unsplit,
    /// The split's `matches` do not match this request: the root service's own endpoints.
    Unmatched(&'a CompiledSplit),
    /// No backend has weight above 0: the root service's own endpoints (documented fallback;
    /// the compiler warns about such splits).
    NoWeight(&'a CompiledSplit),
    /// Split across the backends by weight: call [`CompiledSplit::pick`].
    Split(&'a CompiledSplit),
}

impl<'a> Route<'a> {
    pub fn split(&self) -> Option<&'a CompiledSplit> {
        match *self {
            Route::Unsplit => None,
            Route::Unmatched(s) | Route::NoWeight(s) | Route::Split(s) => Some(s),
        }
    }

    /// The backend service for one request; `None` means the root service itself.
    pub fn pick<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> Option<&'a Backend> {
        match *self {
            Route::Split(s) => s.pick(rng),
            _ => None,
        }
    }
}

impl Snapshot {
    /// Where a request to `service` goes. `request` is `None` for TCP, which only splits
    /// without `matches`.
    pub fn route(&self, service: ServiceName<'_>, request: Option<&HttpRequest<'_>>) -> Route<'_> {
        let key = NameRef {
            namespace: service.namespace,
            name: service.name,
        };
        let Some(split) = self.splits.get(&key) else {
            return Route::Unsplit;
        };
        if !split.admits(request) {
            Route::Unmatched(split)
        } else if split.sampler.is_none() {
            Route::NoWeight(split)
        } else {
            Route::Split(split)
        }
    }
}
