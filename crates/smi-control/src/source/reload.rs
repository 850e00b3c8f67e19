//! Reloading a policy source: its documents are loaded origin by origin ([`PerOrigin`]), and
//! the merged policy is published when it changed. An origin with errors is reported (log,
//! admin API, metrics) while its last good resources keep serving, or nothing if it never
//! loaded; every other origin applies, and fixing it recovers.

use std::sync::{Arc, Mutex};

use smi_core::model::PolicySet;
use smi_core::{Options, Snapshot};

use super::per_origin::{Failing, PerOrigin};
use crate::hub::Hub;
use crate::status::{Counters, FailingFile, Serving, Status, unix_now};
use crate::traits::{PolicySource, SourceError};

pub struct PolicyReloader {
    pub source: Arc<dyn PolicySource>,
    pub hub: Arc<Hub>,
    pub status: Arc<Status>,
    pub options: Options,
    /// Reloads run one at a time; this is what they keep between them.
    state: Mutex<State>,
}

impl std::fmt::Debug for PolicyReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyReloader")
            .field("source", &self.source.name())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct State {
    origins: PerOrigin,
    /// The policy published last, and its compile-time warnings.
    published: Option<(Arc<PolicySet>, Vec<String>)>,
}

impl PolicyReloader {
    pub fn new(
        source: Arc<dyn PolicySource>,
        hub: Arc<Hub>,
        status: Arc<Status>,
        options: Options,
    ) -> Self {
        Self {
            source,
            hub,
            status,
            options,
            state: Mutex::default(),
        }
    }

    /// Loads what changed in the source and publishes the merged policy if it differs from the
    /// one published last. Returns whether a new version was published. It blocks (the source
    /// is read): call it where blocking is allowed.
    pub fn reload(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Counters::inc(&self.status.counters.policy_loads);
        let now = unix_now();
        let merged = match self.source.documents() {
            Ok(documents) => state.origins.refresh(documents),
            Err(e) => {
                self.unreadable(&e, now);
                return false;
            }
        };
        if !merged.failing.is_empty() {
            Counters::inc(&self.status.counters.policy_load_failures);
        }
        for failing in &merged.failing {
            log_failing(failing);
        }
        let failures: Vec<(String, Vec<String>)> = merged
            .failing
            .iter()
            .map(|f| {
                let errors = f.errors.iter().map(ToString::to_string).collect();
                (f.origin.clone(), errors)
            })
            .collect();
        self.source.loaded(&failures);
        let mut warnings: Vec<String> = merged.loaded.warnings().map(ToString::to_string).collect();
        let resources = merged.loaded.policy.len();
        let version = self.publish_if_changed(&mut state, merged.loaded.policy, &warnings);
        tracing::debug!(
            source = self.source.name(),
            parsed = merged.parsed,
            published = version.is_some(),
            "policy source reloaded"
        );
        if let Some((_, compiled)) = &state.published {
            warnings.extend(compiled.iter().cloned());
        }
        self.status.set_policy(|p| {
            if let Some(version) = version {
                p.version = version;
            }
            p.resources = resources;
            p.skipped_documents = merged.loaded.skipped;
            p.errors = merged
                .failing
                .iter()
                .flat_map(|f| f.errors.iter().map(ToString::to_string))
                .collect();
            p.failing_files = merged.failing.iter().map(failing_file).collect();
            p.warnings = warnings;
            p.last_load_unix = now;
            if merged.failing.is_empty() {
                p.last_good_unix = now;
            }
        });
        version.is_some()
    }

    /// Publishes `policy` unless it equals the policy published last; returns the new version.
    fn publish_if_changed(
        &self,
        state: &mut State,
        policy: PolicySet,
        load_warnings: &[String],
    ) -> Option<u64> {
        if state
            .published
            .as_ref()
            .is_some_and(|(published, _)| **published == policy)
        {
            return None;
        }
        let policy = Arc::new(policy);
        // Compile once here too: the cross-resource warnings are what an operator needs to see.
        let snapshot = Snapshot::compile(policy.clone(), self.options.clone());
        let compiled: Vec<String> = snapshot
            .warnings()
            .iter()
            .map(ToString::to_string)
            .collect();
        for w in load_warnings.iter().chain(&compiled) {
            tracing::info!(warning = %w, "policy warning");
        }
        let version = self.hub.set_policy(policy.clone());
        let resources = policy.len();
        tracing::info!(
            version,
            resources,
            source = self.source.name(),
            "policy published"
        );
        state.published = Some((policy, compiled));
        Some(version)
    }

    /// The source could not be read: nothing changes, and the policy published last serves.
    fn unreadable(&self, e: &SourceError, now: u64) {
        Counters::inc(&self.status.counters.policy_load_failures);
        let source = self.source.name().to_owned();
        let error = format!("{source}: {e}");
        tracing::warn!(%source, %error, "policy source unreadable; the policy published last keeps serving");
        self.status.set_policy(|p| {
            p.errors = vec![error.clone()];
            p.failing_files = vec![FailingFile {
                file: source,
                errors: vec![error],
                serving: Serving::LastGood,
            }];
            p.last_load_unix = now;
        });
    }
}

fn log_failing(failing: &Failing) {
    let file = &failing.origin;
    for error in &failing.errors {
        if failing.serving_last_good {
            tracing::warn!(%file, %error, "policy file refused; the last good resources of this file keep serving");
        } else {
            tracing::warn!(%file, %error, "policy file refused; it contributes nothing until it loads");
        }
    }
}

fn failing_file(failing: &Failing) -> FailingFile {
    FailingFile {
        file: failing.origin.clone(),
        errors: failing.errors.iter().map(ToString::to_string).collect(),
        serving: if failing.serving_last_good {
            Serving::LastGood
        } else {
            Serving::Nothing
        },
    }
}

#[cfg(test)]
mod tests;
