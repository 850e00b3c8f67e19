//! Delegated authorization: a SubjectAccessReview (authorization.k8s.io/v1) per request, as
//! k8s.io/apiserver's delegating authorizer posts it, with its answers kept for a while (10 s
//! by default, as there) in a bounded cache, so a dashboard polling a path costs one review per
//! period, not one per request.
//!
//! Only answers are kept: a review that could not be made is asked again by the next request.
//! `system:masters` is allowed without a review (k8s.io/apiserver's `AlwaysAllowGroups`; the
//! aggregator's availability probe is in it, and kube-apiserver allows that group everything).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes as WireResourceAttributes, SubjectAccessReview,
    SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use super::attributes::Attributes;
use super::requestheader::User;

/// The group allowed everything without a review.
pub const MASTERS: &str = "system:masters";

/// What a review said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// `reason` is the review's (often empty: RBAC says nothing when no rule matched).
    Denied {
        reason: String,
    },
}

/// The review could not be made (the API server unreachable, refusing, or too slow).
#[derive(Clone, Debug, thiserror::Error)]
#[error("SubjectAccessReview: {0}")]
pub struct ReviewError(pub String);

/// Posts reviews and keeps their answers.
pub struct Reviewer {
    api: Api<SubjectAccessReview>,
    timeout: Duration,
    cache: Mutex<DecisionCache>,
}

impl std::fmt::Debug for Reviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reviewer")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

// === impl Reviewer ===

impl Reviewer {
    pub fn new(client: kube::Client, ttl: Duration, capacity: usize, timeout: Duration) -> Self {
        Self {
            api: Api::all(client),
            timeout,
            cache: Mutex::new(DecisionCache::new(ttl, capacity)),
        }
    }

    /// Whether `user` may do what `attributes` say.
    pub async fn review(
        &self,
        user: &User,
        attributes: &Attributes,
    ) -> Result<Decision, ReviewError> {
        if user.groups.iter().any(|g| g == MASTERS) {
            return Ok(Decision::Allowed);
        }
        let key = Arc::new((user.clone(), attributes.clone()));
        if let Some(decision) = self.lock().get(&key, Instant::now()) {
            return Ok(decision);
        }
        let review = subject_access_review(user, attributes);
        let posted = tokio::time::timeout(
            self.timeout,
            self.api.create(&PostParams::default(), &review),
        )
        .await
        .map_err(|_| ReviewError(format!("no answer within {:?}", self.timeout)))?
        .map_err(|e| ReviewError(e.to_string()))?;
        let status = posted
            .status
            .ok_or_else(|| ReviewError("the answer has no status".to_owned()))?;
        let decision = if status.allowed {
            Decision::Allowed
        } else {
            Decision::Denied {
                reason: status.reason.unwrap_or_default(),
            }
        };
        self.lock().insert(key, decision.clone(), Instant::now());
        Ok(decision)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DecisionCache> {
        // The cache holds no invariant a panic could break half-way.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The review of `attributes` for `user`: the wire type, built here only.
pub fn subject_access_review(user: &User, attributes: &Attributes) -> SubjectAccessReview {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let (resource_attributes, non_resource_attributes) = match attributes {
        Attributes::Resource(r) => (
            Some(WireResourceAttributes {
                verb: some(&r.verb),
                group: some(&r.group),
                version: some(&r.version),
                resource: some(&r.resource),
                subresource: some(&r.subresource),
                namespace: some(&r.namespace),
                name: some(&r.name),
                ..WireResourceAttributes::default()
            }),
            None,
        ),
        Attributes::NonResource { verb, path } => (
            None,
            Some(NonResourceAttributes {
                path: some(path),
                verb: some(verb),
            }),
        ),
    };
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: some(&user.name),
            uid: some(&user.uid),
            groups: (!user.groups.is_empty()).then(|| user.groups.clone()),
            extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
            resource_attributes,
            non_resource_attributes,
        },
        ..SubjectAccessReview::default()
    }
}

type Key = Arc<(User, Attributes)>;

/// Answers by (user, attributes) until they expire; at most `capacity` of them.
#[derive(Debug)]
pub struct DecisionCache {
    ttl: Duration,
    capacity: usize,
    entries: HashMap<Key, (Decision, Instant)>,
}

// === impl DecisionCache ===

impl DecisionCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: HashMap::new(),
        }
    }

    /// The answer for `key`, unless there is none or it expired by `now`.
    pub fn get(&mut self, key: &Key, now: Instant) -> Option<Decision> {
        match self.entries.get(key) {
            Some((decision, expires)) if now < *expires => Some(decision.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `decision` for `key` from `now`. When full, the expired answers go, then (if
    /// still full) the one expiring first.
    pub fn insert(&mut self, key: Key, decision: Decision, now: Instant) {
        if self.capacity == 0 || self.ttl.is_zero() {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, (_, expires)| now < *expires);
            if self.entries.len() >= self.capacity {
                let first = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, expires))| *expires)
                    .map(|(k, _)| k.clone());
                if let Some(first) = first {
                    self.entries.remove(&first);
                }
            }
        }
        self.entries.insert(key, (decision, now + self.ttl));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
