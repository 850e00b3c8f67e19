//! Watch streams: one JSON event per line (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`,
//! `ERROR`) over a chunked response, as the real server sends them.
//!
//! From `resourceVersion` N the stream replays the changes after N, then goes on live; from 0 or
//! unset it first sends a synthetic `ADDED` for every object. Selectors apply to both sides of a
//! change: an object that stops matching is sent as `DELETED` (its previous content, at the
//! change's revision). A resourceVersion before the compaction point gets an `ERROR` event with
//! a 410 `Expired` Status, then the stream ends; so does a stream whose next changes were
//! compacted before it read them (a watch that fell behind). Bookmarks (if asked for) carry only
//! `metadata.resourceVersion`, after every 200 ms without events and on `bookmark_now`. The
//! stream ends cleanly after `timeoutSeconds` or when its resource is no longer served (its CRD
//! deleted), and abruptly (no final chunk) on `break_watches`.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http_body::Frame;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::Shared;
use super::resources::ResourceType;
use super::selector::Selector;
use super::state::{State, served};
use super::store::Change;

/// How long a stream that asked for bookmarks stays quiet before it sends one.
const BOOKMARK_QUIET: Duration = Duration::from_millis(200);

/// What a watch request asks for.
#[derive(Debug)]
pub(super) struct WatchSpec {
    pub rt: ResourceType,
    pub version: String,
    pub namespace: Option<String>,
    pub selector: Selector,
    /// `None` for resourceVersion 0 or unset.
    pub from: Option<u64>,
    pub bookmarks: bool,
    /// `sendInitialEvents=true` (a streaming list): the synthetic `ADDED` events end with a
    /// bookmark annotated `k8s.io/initial-events-end`.
    pub initial_events_end: bool,
    pub timeout: Duration,
    /// The request's path and query, for `open_watches`.
    pub path: String,
}

/// An open stream's place.
struct Watch {
    spec: WatchSpec,
    registration: Registration,
    /// Changes up to this revision have been looked at.
    pos: u64,
    break_epoch: u64,
    bookmark_epoch: u64,
    pending: VecDeque<Bytes>,
    done: bool,
    deadline: Instant,
    pulse: tokio::sync::watch::Receiver<u64>,
}

/// Keeps the stream in `open_watches` until it is dropped (ended, or its connection closed).
struct Registration {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.update(|state| state.watches.remove(&self.id));
    }
}

fn line(kind: &str, object: Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// The body of a watch response for `spec`.
pub(super) fn stream(
    shared: Arc<Shared>,
    spec: WatchSpec,
) -> impl Stream<Item = Result<Frame<Bytes>, io::Error>> + Send {
    let pulse = shared.pulse.subscribe();
    let (id, watch) = shared.update(|state| {
        let id = state.next_watch;
        state.next_watch += 1;
        state.watches.insert(id, spec.path.clone());
        let mut pending = VecDeque::new();
        let pos = match spec.from {
            Some(from) => from,
            None => {
                let objects =
                    state
                        .store
                        .range(&spec.rt.group, &spec.rt.plural, spec.namespace.as_deref());
                for (_, object) in objects.filter(|(_, o)| spec.selector.matches(o)) {
                    pending.push_back(line("ADDED", served(&spec.rt, &spec.version, object)));
                }
                if spec.initial_events_end {
                    let end = json!({
                        "kind": spec.rt.kind,
                        "apiVersion": spec.rt.api_version(&spec.version),
                        "metadata": {
                            "resourceVersion": state.store.revision().to_string(),
                            "annotations": {"k8s.io/initial-events-end": "true"},
                        },
                    });
                    pending.push_back(line("BOOKMARK", end));
                }
                state.store.revision()
            }
        };
        let watch = (pos, state.break_epoch, state.bookmark_epoch, pending);
        (id, watch)
    });
    let (pos, break_epoch, bookmark_epoch, pending) = watch;
    let deadline = Instant::now() + spec.timeout;
    let watch = Watch {
        spec,
        registration: Registration { shared, id },
        pos,
        break_epoch,
        bookmark_epoch,
        pending,
        done: false,
        deadline,
        pulse,
    };
    futures_util::stream::unfold(watch, |mut w| async move {
        loop {
            if let Some(line) = w.pending.pop_front() {
                return Some((Ok(Frame::data(line)), w));
            }
            if w.done {
                return None;
            }
            let shared = w.registration.shared.clone();
            if !shared.read(|state| w.catch_up(state)) {
                w.done = true;
                let broken = io::Error::other("the test broke every watch (break_watches)");
                return Some((Err(broken), w));
            }
            if !w.pending.is_empty() || w.done {
                continue;
            }
            let quiet = tokio::select! {
                changed = w.pulse.changed() => match changed {
                    Ok(()) => false,
                    Err(_) => return None, // the server is gone
                },
                () = tokio::time::sleep(BOOKMARK_QUIET), if w.spec.bookmarks => true,
                () = tokio::time::sleep_until(w.deadline) => return None,
            };
            if quiet {
                w.bookmark();
            }
        }
    })
}

// === impl Watch ===

impl Watch {
    /// Queues the events of the changes since `pos`; false if the test broke the watches.
    fn catch_up(&mut self, state: &State) -> bool {
        if state.break_epoch != self.break_epoch {
            return false;
        }
        match state.store.changes_since(self.pos) {
            Ok(changes) => {
                for change in changes {
                    if let Some(line) = self.event(change) {
                        self.pending.push_back(line);
                    }
                }
                self.pos = state.store.revision();
                let rt = &self.spec.rt;
                if state
                    .registry
                    .find(&rt.group, &self.spec.version, &rt.plural)
                    .is_none()
                {
                    // Its CRD was deleted, or no longer serves this version: the stream ends.
                    self.done = true;
                }
            }
            Err(compacted) => {
                let message = format!(
                    "too old resource version: {} ({})",
                    self.pos, compacted.compacted
                );
                let status = super::status::ApiError::expired(message).status();
                self.pending.push_back(line("ERROR", status));
                self.done = true;
            }
        }
        if state.bookmark_epoch != self.bookmark_epoch {
            self.bookmark_epoch = state.bookmark_epoch;
            if self.spec.bookmarks && !self.done {
                self.bookmark();
            }
        }
        true
    }

    /// The event `change` makes on this stream, if any.
    fn event(&self, change: &Change) -> Option<Bytes> {
        let spec = &self.spec;
        if !change
            .key
            .within(&spec.rt.group, &spec.rt.plural, spec.namespace.as_deref())
        {
            return None;
        }
        let was = change.old.as_ref().filter(|o| spec.selector.matches(o));
        let is = change.new.as_ref().filter(|o| spec.selector.matches(o));
        let (kind, object) = match (was, is) {
            (Some(_), Some(new)) => ("MODIFIED", new.clone()),
            (None, Some(new)) => ("ADDED", new.clone()),
            (Some(old), None) => {
                let mut old = old.clone();
                old["metadata"]["resourceVersion"] = json!(change.revision.to_string());
                ("DELETED", old)
            }
            (None, None) => return None,
        };
        Some(line(kind, served(&spec.rt, &spec.version, &object)))
    }

    fn bookmark(&mut self) {
        let object = json!({
            "kind": self.spec.rt.kind,
            "apiVersion": self.spec.rt.api_version(&self.spec.version),
            "metadata": {"resourceVersion": self.pos.to_string()},
        });
        self.pending.push_back(line("BOOKMARK", object));
    }
}
