//! Watching a directory: bursts of file events are debounced, then the caller is told once.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Quiet time after the last file event before reloading: editors write files in several steps.
pub const DEBOUNCE: Duration = Duration::from_millis(75);

/// Watches `dir` recursively and calls `on_change` after each debounced burst of events.
/// The returned watcher must be kept alive.
pub fn watch_dir(
    dir: &Path,
    on_change: impl Fn() + Send + Sync + 'static,
) -> notify::Result<notify::RecommendedWatcher> {
    watch_dir_except(dir, |_| false, on_change)
}

/// [`watch_dir`], except that events touching only paths that `ignored` accepts (files the
/// caller writes itself) do not count.
pub fn watch_dir_except(
    dir: &Path,
    ignored: impl Fn(&Path) -> bool + Send + 'static,
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
