//! Reloading the policy directory: bursts of file events are debounced, the directory is loaded
//! file by file ([`PerFile`]), and the merged policy is published when it changed. A file with
//! errors is reported (log, admin API, metrics) while its last good resources keep serving, or
//! nothing if it never loaded; every other file applies, and fixing the file recovers.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use smi_core::model::PolicySet;
use smi_core::{Options, Snapshot};
use tokio::sync::mpsc;

use super::per_file::{Failing, PerFile};
use crate::distribute::Hub;
use crate::status::{Counters, FailingFile, Serving, Status, unix_now};

/// Quiet time after the last file event before reloading: editors write files in several steps.
pub const DEBOUNCE: Duration = Duration::from_millis(75);

#[derive(Debug)]
pub struct PolicyReloader {
    pub dir: PathBuf,
    pub hub: Arc<Hub>,
    pub status: Arc<Status>,
    pub options: Options,
    /// Reloads run one at a time; this is what they keep between them.
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    files: PerFile,
    /// The policy published last, and its compile-time warnings.
    published: Option<(Arc<PolicySet>, Vec<String>)>,
}

impl PolicyReloader {
    pub fn new(dir: PathBuf, hub: Arc<Hub>, status: Arc<Status>, options: Options) -> Self {
        Self {
            dir,
            hub,
            status,
            options,
            state: Mutex::default(),
        }
    }

    /// Loads what changed in the directory and publishes the merged policy if it differs from the
    /// one published last. Returns whether a new version was published.
    pub fn reload(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Counters::inc(&self.status.counters.policy_loads);
        let now = unix_now();
        let merged = match state.files.refresh(&self.dir) {
            Ok(merged) => merged,
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
        let mut warnings: Vec<String> = merged.loaded.warnings().map(ToString::to_string).collect();
        let resources = merged.loaded.policy.len();
        let version = self.publish_if_changed(&mut state, merged.loaded.policy, &warnings);
        tracing::debug!(dir = %self.dir.display(), parsed = merged.parsed, published = version.is_some(), "policy directory reloaded");
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
        tracing::info!(version, resources, dir = %self.dir.display(), "policy published");
        state.published = Some((policy, compiled));
        Some(version)
    }

    /// The directory could not be listed: nothing changes, and the policy published last serves.
    fn unreadable(&self, e: &std::io::Error, now: u64) {
        Counters::inc(&self.status.counters.policy_load_failures);
        let dir = self.dir.display().to_string();
        let error = format!("{dir}: cannot read: {e}");
        tracing::warn!(%dir, %error, "policy directory unreadable; the policy published last keeps serving");
        self.status.set_policy(|p| {
            p.errors = vec![error.clone()];
            p.failing_files = vec![FailingFile {
                file: dir,
                errors: vec![error],
                serving: Serving::LastGood,
            }];
            p.last_load_unix = now;
        });
    }
}

fn log_failing(failing: &Failing) {
    let file = failing.file.display();
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
        file: failing.file.display().to_string(),
        errors: failing.errors.iter().map(ToString::to_string).collect(),
        serving: if failing.serving_last_good {
            Serving::LastGood
        } else {
            Serving::Nothing
        },
    }
}

/// Watches `dir` recursively and calls `on_change` after each debounced burst of events.
/// The returned watcher must be kept alive.
pub fn watch_dir(
    dir: &std::path::Path,
    on_change: impl Fn() + Send + Sync + 'static,
) -> notify::Result<notify::RecommendedWatcher> {
    watch_dir_except(dir, |_| false, on_change)
}

/// [`watch_dir`], except that events touching only paths that `ignored` accepts (files the
/// caller writes itself) do not count.
pub fn watch_dir_except(
    dir: &std::path::Path,
    ignored: impl Fn(&std::path::Path) -> bool + Send + 'static,
    on_change: impl Fn() + Send + Sync + 'static,
) -> notify::Result<notify::RecommendedWatcher> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = |e: &notify::Event| {
            !e.kind.is_access() && (e.paths.is_empty() || !e.paths.iter().all(|p| ignored(p)))
        };
        if event.is_ok_and(|e| relevant(&e)) {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(dir, RecursiveMode::Recursive)?;
    let on_change = Arc::new(on_change);
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Debounce: wait until the directory has been quiet for DEBOUNCE.
            while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {}
            let on_change = on_change.clone();
            let _ = tokio::task::spawn_blocking(move || on_change()).await;
        }
    });
    Ok(watcher)
}

#[cfg(test)]
mod tests;
