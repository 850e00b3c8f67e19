//! What the admin API reports: connected workloads, the policy's health, and counters
//! ([`Status::prometheus`]: the same as Prometheus text).

mod metrics;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// One connected `Watch` stream.
#[derive(Clone, Debug, Serialize)]
pub struct Session {
    pub identity: String,
    pub workload: String,
    pub calls: Vec<String>,
    pub connected_at_unix: u64,
    pub sent_version: u64,
    pub acked_version: u64,
    /// The newest version this workload's view was computed from; when its view did not change,
    /// nothing is sent, so a workload that acknowledged `sent_version` is current as of this.
    pub current_version: u64,
    /// The reason given by the last rejection, if the last acknowledgement was one.
    pub rejected: Option<String>,
    pub certificate_expires_unix: u64,
    /// The workload and pod names its certificate carries, when it has them.
    pub names: Option<SessionNames>,
}

/// A session's Kubernetes names (its certificate's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionNames {
    /// The workload (Deployment).
    pub workload: String,
    pub pod: String,
}

/// A workload whose Watch streams end before it acknowledges what they sent: it is not
/// receiving policy (a view it cannot decode, a network that cuts it off). Cleared when it
/// acknowledges again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailingWatch {
    pub identity: String,
    pub workload: String,
    /// Streams in a row that ended with their last update unacknowledged.
    pub failed_streams: u64,
    pub last_failure_unix: u64,
    /// What the last failed stream had sent, and what the workload had acknowledged.
    pub sent_version: u64,
    pub acked_version: u64,
}

/// How many failing workloads the admin view remembers (the oldest are forgotten first).
pub const MAX_FAILING_WATCHES: usize = 1_000;

/// The policy directory's state.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PolicyStatus {
    /// Version of the last policy published.
    pub version: u64,
    pub resources: usize,
    pub skipped_documents: usize,
    /// Errors of the last load, over every failing file; non-empty means some file is not
    /// applied (see `failing_files`).
    pub errors: Vec<String>,
    /// Files whose newest version does not load, and what serves in their place. Every other
    /// file applies.
    pub failing_files: Vec<FailingFile>,
    pub warnings: Vec<String>,
    pub last_load_unix: u64,
    /// When every file last loaded cleanly.
    pub last_good_unix: u64,
}

/// A policy file whose newest version does not load.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailingFile {
    pub file: String,
    pub errors: Vec<String>,
    pub serving: Serving,
}

/// What serves in place of a failing file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Serving {
    /// Its resources from the newest version that loaded cleanly.
    LastGood,
    /// Nothing: it has not loaded cleanly since the control service started.
    Nothing,
}

#[derive(Debug, Default)]
pub struct Counters {
    pub certificates_issued: AtomicU64,
    pub certificates_refused: AtomicU64,
    pub policy_loads: AtomicU64,
    pub policy_load_failures: AtomicU64,
    pub updates_sent: AtomicU64,
    pub acks: AtomicU64,
    pub nacks: AtomicU64,
    pub registrations_refused: AtomicU64,
}

impl Counters {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Shared by the API, the policy watcher and the admin server.
#[derive(Debug, Default)]
pub struct Status {
    pub counters: Counters,
    sessions: Mutex<HashMap<u64, Session>>,
    failing_watches: Mutex<HashMap<(String, String), FailingWatch>>,
    next_session: AtomicU64,
    policy: Mutex<PolicyStatus>,
}

impl Status {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    pub fn open_session(&self, session: Session) -> u64 {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed) + 1;
        self.sessions_lock().insert(id, session);
        id
    }

    pub fn close_session(&self, id: u64) {
        let Some(closed) = self.sessions_lock().remove(&id) else {
            return;
        };
        if closed.sent_version <= closed.acked_version {
            return;
        }
        let mut failing = self.failing_lock();
        if failing.len() >= MAX_FAILING_WATCHES {
            let oldest = failing
                .iter()
                .min_by_key(|(_, f)| f.last_failure_unix)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                failing.remove(&oldest);
            }
        }
        let entry = failing
            .entry((closed.identity.clone(), closed.workload.clone()))
            .or_insert_with(|| FailingWatch {
                identity: closed.identity.clone(),
                workload: closed.workload.clone(),
                failed_streams: 0,
                last_failure_unix: 0,
                sent_version: 0,
                acked_version: 0,
            });
        entry.failed_streams += 1;
        entry.last_failure_unix = unix_now();
        entry.sent_version = closed.sent_version;
        entry.acked_version = closed.acked_version;
    }

    /// Workloads whose Watch streams keep failing, most failures first.
    pub fn failing_watches(&self) -> Vec<FailingWatch> {
        let mut all: Vec<FailingWatch> = self.failing_lock().values().cloned().collect();
        all.sort_by(|a, b| {
            b.failed_streams
                .cmp(&a.failed_streams)
                .then_with(|| (&a.identity, &a.workload).cmp(&(&b.identity, &b.workload)))
        });
        all
    }

    fn failing_lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), FailingWatch>> {
        self.failing_watches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// A Watch stream computed its view at `version`, and sent it if it had changed.
    pub fn evaluated(&self, id: u64, version: u64, sent: bool) {
        if let Some(s) = self.sessions_lock().get_mut(&id) {
            s.current_version = version;
            if sent {
                s.sent_version = version;
            }
        }
        if sent {
            Counters::inc(&self.counters.updates_sent);
        }
    }

    /// Records an acknowledgement on the sessions of `identity` (and `workload`, when given).
    pub fn ack(&self, identity: &str, workload: &str, version: u64, rejected: Option<String>) {
        Counters::inc(if rejected.is_some() {
            &self.counters.nacks
        } else {
            &self.counters.acks
        });
        for s in self.sessions_lock().values_mut() {
            if s.identity == identity && (workload.is_empty() || s.workload == workload) {
                s.acked_version = version;
                s.rejected = rejected.clone();
            }
        }
        // Acknowledging again (even a rejection: it received the update) ends a failing run.
        self.failing_lock()
            .retain(|(i, w), _| !(i == identity && (workload.is_empty() || w == workload)));
    }

    pub fn sessions(&self) -> Vec<Session> {
        let mut all: Vec<Session> = self.sessions_lock().values().cloned().collect();
        all.sort_by(|a, b| (&a.identity, &a.workload).cmp(&(&b.identity, &b.workload)));
        all
    }

    pub fn policy(&self) -> PolicyStatus {
        self.policy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_policy(&self, update: impl FnOnce(&mut PolicyStatus)) {
        update(&mut self.policy.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn sessions_lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Session>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(sent: u64, acked: u64) -> Session {
        Session {
            identity: "spiffe://cluster.local/ns/shop/sa/web".into(),
            workload: "web-1".into(),
            calls: Vec::new(),
            connected_at_unix: 0,
            sent_version: sent,
            acked_version: acked,
            current_version: sent,
            rejected: None,
            certificate_expires_unix: 0,
            names: None,
        }
    }

    #[test]
    fn streams_that_end_unacknowledged_are_reported_until_the_workload_acknowledges() {
        let status = Status::new();
        let clean = status.open_session(session(4, 4));
        status.close_session(clean);
        assert!(
            status.failing_watches().is_empty(),
            "an acknowledged stream is no failure"
        );
        for _ in 0..3 {
            let id = status.open_session(session(5, 3));
            status.close_session(id);
        }
        let failing = status.failing_watches();
        assert_eq!(failing.len(), 1);
        assert_eq!(failing[0].failed_streams, 3);
        assert_eq!((failing[0].sent_version, failing[0].acked_version), (5, 3));
        assert!(
            status
                .prometheus(0, 0)
                .contains("smi_control_watches_failing 1")
        );
        status.ack("spiffe://cluster.local/ns/shop/sa/web", "web-1", 5, None);
        assert!(status.failing_watches().is_empty());
    }
}
