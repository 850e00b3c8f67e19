//! Who has reported: per identity, each instance's last counted sequence number (a retried
//! report is counted once) and the pods whose telemetry the store holds (bounded per identity,
//! whatever names a workload gives). Sharded by identity: one identity's reports never wait for
//! another's.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};

use smi_core::ServiceAccount;
use smi_core::telemetry::Workload;

use super::report::Report;
use super::ring::SPAN;
use crate::quota::Exceeded;

const SHARDS: usize = 16;
const SPAN_MS: u64 = SPAN.as_millis() as u64;

/// The bounds on what the tracking holds per identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstanceLimits {
    pub instances_per_identity: usize,
    pub pods_per_identity: usize,
}

#[derive(Debug)]
pub(super) struct Reporters {
    shards: Box<[Mutex<HashMap<ServiceAccount, Reporter>>]>,
    hasher: RandomState,
    limits: InstanceLimits,
}

#[derive(Debug, Default)]
struct Reporter {
    instances: HashMap<Box<str>, Instance>,
    /// Pods that reported, and when they last did (ms since the epoch).
    pods: HashMap<Workload, u64>,
}

#[derive(Debug)]
struct Instance {
    sequence: u64,
    seen: u64,
}

/// Whether a report is to be counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Admission {
    Count,
    /// Its sequence is at or below the instance's last counted one: a retry, or older.
    Repeat,
}

impl Reporters {
    pub fn new(limits: InstanceLimits) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            limits,
        }
    }

    /// Decides whether `report` of `identity`, arriving at `now`, counts; records it if so. A
    /// pod beyond the identity's limit is refused (and its sequence is not taken).
    pub fn admit(
        &self,
        identity: &ServiceAccount,
        report: &Report,
        now: u64,
    ) -> Result<Admission, Exceeded> {
        let mut shard = self.shard(identity);
        let reporter = match shard.get_mut(identity) {
            Some(reporter) => reporter,
            None => shard.entry(identity.clone()).or_default(),
        };
        let limits = self.limits;
        if !reporter.pods.contains_key(&report.reporter) {
            if reporter.pods.len() >= limits.pods_per_identity {
                reporter
                    .pods
                    .retain(|_, seen| now.saturating_sub(*seen) < SPAN_MS);
            }
            if reporter.pods.len() >= limits.pods_per_identity {
                return Err(Exceeded::new(
                    format!("pods reporting telemetry as {identity} within the last hour"),
                    limits.pods_per_identity,
                ));
            }
        }
        match reporter.instances.get_mut(report.instance.as_str()) {
            Some(instance) if report.sequence <= instance.sequence => {
                instance.seen = now;
                return Ok(Admission::Repeat);
            }
            Some(instance) => {
                instance.sequence = report.sequence;
                instance.seen = now;
            }
            None => {
                if reporter.instances.len() >= limits.instances_per_identity {
                    // Forget the instance heard from longest ago: it has most likely stopped.
                    let oldest = reporter
                        .instances
                        .iter()
                        .min_by_key(|(_, i)| i.seen)
                        .map(|(id, _)| id.clone());
                    if let Some(oldest) = oldest {
                        reporter.instances.remove(&oldest);
                    }
                }
                reporter.instances.insert(
                    report.instance.as_str().into(),
                    Instance {
                        sequence: report.sequence,
                        seen: now,
                    },
                );
            }
        }
        match reporter.pods.get_mut(&report.reporter) {
            Some(seen) => *seen = now,
            None => {
                reporter.pods.insert(report.reporter.clone(), now);
            }
        }
        Ok(Admission::Count)
    }

    /// Forgets instances and pods silent for longer than the store remembers.
    pub fn sweep(&self, now: u64) {
        let fresh = |seen: u64| now.saturating_sub(seen) < SPAN_MS;
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            shard.retain(|_, r| {
                r.instances.retain(|_, i| fresh(i.seen));
                r.pods.retain(|_, seen| fresh(*seen));
                !r.instances.is_empty() || !r.pods.is_empty()
            });
        }
    }

    /// Instances remembered, over every identity.
    pub fn instances(&self) -> usize {
        self.shards
            .iter()
            .map(|s| lock(s).values().map(|r| r.instances.len()).sum::<usize>())
            .sum()
    }

    fn shard(
        &self,
        identity: &ServiceAccount,
    ) -> MutexGuard<'_, HashMap<ServiceAccount, Reporter>> {
        let i = self.hasher.hash_one(identity) as usize % SHARDS;
        lock(&self.shards[i])
    }
}

/// Each change is one map update, so a poisoned lock leaves the maps consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
