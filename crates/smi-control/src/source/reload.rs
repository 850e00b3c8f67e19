//! Reloading the policy directory: bursts of file events are debounced, the directory is loaded
//! and compiled, and a valid result is published. An invalid one is reported (log, admin API,
//! metrics) while the last good policy keeps serving; fixing the file recovers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use smi_core::{Options, Snapshot};
use tokio::sync::mpsc;

use super::load_paths;
use crate::distribute::Hub;
use crate::status::{Counters, Status, unix_now};

/// Quiet time after the last file event before reloading: editors write files in several steps.
pub const DEBOUNCE: Duration = Duration::from_millis(75);

#[derive(Debug)]
pub struct PolicyReloader {
    pub dir: PathBuf,
    pub hub: Arc<Hub>,
    pub status: Arc<Status>,
    pub options: Options,
}

impl PolicyReloader {
    /// Loads the directory; publishes it if valid. Returns whether it was published.
    pub fn reload(&self) -> bool {
        let loaded = load_paths(&[&self.dir]);
        Counters::inc(&self.status.counters.policy_loads);
        let now = unix_now();
        if !loaded.is_valid() {
            Counters::inc(&self.status.counters.policy_load_failures);
            let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
            for e in &errors {
                tracing::warn!(error = %e, "policy refused; the last good policy keeps serving");
            }
            self.status.set_policy(|p| {
                p.errors = errors;
                p.last_load_unix = now;
            });
            return false;
        }
        let mut warnings: Vec<String> = loaded.warnings().map(ToString::to_string).collect();
        let resources = loaded.policy.len();
        let policy = Arc::new(loaded.policy);
        // Compile once here too: the cross-resource warnings are what an operator needs to see.
        let snapshot = Snapshot::compile(policy.clone(), self.options.clone());
        warnings.extend(snapshot.warnings().iter().map(ToString::to_string));
        for w in &warnings {
            tracing::info!(warning = %w, "policy warning");
        }
        let version = self.hub.set_policy(policy);
        tracing::info!(version, resources, dir = %self.dir.display(), "policy published");
        self.status.set_policy(|p| {
            p.version = version;
            p.resources = resources;
            p.skipped_documents = loaded.skipped;
            p.errors.clear();
            p.warnings = warnings;
            p.last_load_unix = now;
            p.last_good_unix = now;
        });
        true
    }
}

/// Watches `dir` recursively and calls `on_change` after each debounced burst of events.
/// The returned watcher must be kept alive.
pub fn watch_dir(
    dir: &std::path::Path,
    on_change: impl Fn() + Send + Sync + 'static,
) -> notify::Result<notify::RecommendedWatcher> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
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
