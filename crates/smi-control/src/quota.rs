//! Quotas: bounds on what one workload can make the control hold, compute or send, so that no
//! single workload can stall what the others depend on (a revocation reaching them, a new
//! workload enrolling). Every limit is per identity or per connection, checked before the work.
//!
//! Telemetry reports (the Report RPC) are bounded too: edges per report, the length of each of
//! their strings, latency bins per edge (at most [`smi_core::telemetry::sketch::BINS`], 1,200:
//! the sketch's own size, not a quota), instances and pods remembered per identity, and series
//! per reporting pod. With the store's hour of history in at most 121 slots per series
//! ([`crate::telemetry::ring`]), that bounds what one identity can make the control hold.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use smi_core::SpiffeId;

/// The limits, with documented defaults (`Quotas::default()`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// Endpoints one Register stream may announce. Default 1,000.
    pub endpoints_per_registration: usize,
    /// Endpoints all live registrations of one identity may hold. Default 4,000.
    pub endpoints_per_identity: usize,
    /// Open Register streams of one identity. Default 1,024.
    pub registrations_per_identity: usize,
    /// Open Watch streams of one identity (its replicas together). Default 1,024.
    pub watches_per_identity: usize,
    /// Open Watch streams on one connection. Default 128.
    pub watches_per_connection: usize,
    /// Services one Watch may name. Default 1,024.
    pub services_per_watch: usize,
    /// Bytes of a workload name (Watch, Ack). Default 253, a Kubernetes object name.
    pub workload_name_bytes: usize,
    /// Bytes of the reason in a rejecting Ack. Default 4,096.
    pub ack_error_bytes: usize,
    /// Edges one Report may carry. Default 1,000 (a workload reports one per peer workload,
    /// service, backend and route it saw in the interval; a report with more is refused whole).
    pub report_edges: usize,
    /// Bytes of each string in a Report: its instance id, and each edge's peer SPIFFE ID,
    /// service, backend and route. Default 512 (a SPIFFE ID of a 63-byte namespace and a
    /// 253-byte ServiceAccount, with room for the trust domain). Workload and pod names are
    /// Kubernetes names (63 and 253 bytes), checked as such.
    pub report_text_bytes: usize,
    /// Instances (processes) of one identity whose last counted report the control remembers,
    /// so that a retried report counts once. Default 1,024; past it the instance heard from
    /// longest ago is forgotten (a retry of its last report, if it is still alive, would count
    /// twice). An instance silent for an hour is forgotten too.
    pub report_instances_per_identity: usize,
    /// Pods of one identity whose telemetry the control holds. Default 1,024. A report from
    /// another pod is refused (RESOURCE_EXHAUSTED) until one of them has been silent for an hour.
    pub telemetry_pods_per_identity: usize,
    /// Series one reporting pod may hold (a series: one direction, peer workload and pod,
    /// service, backend and route). Default 2,000. Past it, new series are dropped (their
    /// existing ones go on) and counted in `smi_control_telemetry_series_dropped_total`.
    pub telemetry_series_per_workload: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            endpoints_per_registration: 1_000,
            endpoints_per_identity: 4_000,
            registrations_per_identity: 1_024,
            watches_per_identity: 1_024,
            watches_per_connection: 128,
            services_per_watch: 1_024,
            workload_name_bytes: 253,
            ack_error_bytes: 4_096,
            report_edges: 1_000,
            report_text_bytes: 512,
            report_instances_per_identity: 1_024,
            telemetry_pods_per_identity: 1_024,
            telemetry_series_per_workload: 2_000,
        }
    }
}

/// A quota a request would exceed; the message says which and what the limit is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("quota exceeded: {what} (limit {limit})")]
pub struct Exceeded {
    pub what: String,
    pub limit: usize,
}

impl Exceeded {
    pub fn new(what: impl Into<String>, limit: usize) -> Self {
        Self {
            what: what.into(),
            limit,
        }
    }
}

/// Checks `len` against `limit`, naming `what` in the refusal.
pub fn at_most(len: usize, limit: usize, what: &str) -> Result<(), Exceeded> {
    if len <= limit {
        Ok(())
    } else {
        Err(Exceeded::new(format!("{what} ({len})"), limit))
    }
}

/// Open streams of one kind, counted per identity and per connection.
#[derive(Debug)]
pub struct StreamCounts {
    kind: &'static str,
    per_identity: usize,
    /// `None`: connections are not limited for this kind.
    per_connection: Option<usize>,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    by_identity: HashMap<SpiffeId, usize>,
    by_connection: HashMap<SocketAddr, usize>,
}

impl StreamCounts {
    pub fn new(
        kind: &'static str,
        per_identity: usize,
        per_connection: Option<usize>,
    ) -> Arc<Self> {
        Arc::new(Self {
            kind,
            per_identity,
            per_connection,
            open: Mutex::default(),
        })
    }

    /// A slot for one more stream, released when the returned guard drops.
    pub fn acquire(
        self: &Arc<Self>,
        identity: &SpiffeId,
        connection: Option<SocketAddr>,
    ) -> Result<StreamSlot, Exceeded> {
        let mut open = self.lock();
        let of_identity = open.by_identity.get(identity).copied().unwrap_or(0);
        if of_identity >= self.per_identity {
            return Err(Exceeded::new(
                format!("open {} streams of {identity}", self.kind),
                self.per_identity,
            ));
        }
        let connection = connection.filter(|_| self.per_connection.is_some());
        if let (Some(addr), Some(limit)) = (connection, self.per_connection) {
            if open.by_connection.get(&addr).copied().unwrap_or(0) >= limit {
                return Err(Exceeded::new(
                    format!("open {} streams on one connection", self.kind),
                    limit,
                ));
            }
            *open.by_connection.entry(addr).or_default() += 1;
        }
        *open.by_identity.entry(identity.clone()).or_default() += 1;
        Ok(StreamSlot {
            counts: self.clone(),
            identity: identity.clone(),
            connection,
        })
    }

    /// Open streams of `identity` now.
    pub fn of(&self, identity: &SpiffeId) -> usize {
        self.lock().by_identity.get(identity).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        // The counts stay consistent under a poisoned lock: each change is one map update.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One open stream; dropping it frees the slot.
#[derive(Debug)]
pub struct StreamSlot {
    counts: Arc<StreamCounts>,
    identity: SpiffeId,
    connection: Option<SocketAddr>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.counts.lock();
        release(&mut open.by_identity, &self.identity);
        if let Some(addr) = &self.connection {
            release(&mut open.by_connection, addr);
        }
    }
}

/// Decrements a count, removing the entry at zero so that the maps hold only open streams.
fn release<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn id(sa: &str) -> SpiffeId {
        format!("spiffe://cluster.local/ns/shop/sa/{sa}")
            .parse()
            .unwrap()
    }

    #[test]
    fn streams_are_limited_per_identity_and_per_connection_and_freed_on_drop() {
        let counts = StreamCounts::new("Watch", 3, Some(2));
        let conn: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let other: SocketAddr = "127.0.0.1:1001".parse().unwrap();
        let a = counts.acquire(&id("a"), Some(conn)).unwrap();
        let _b = counts.acquire(&id("a"), Some(conn)).unwrap();
        let refused = counts.acquire(&id("b"), Some(conn)).unwrap_err();
        assert!(
            refused.to_string().contains("on one connection"),
            "{refused}"
        );
        let _c = counts.acquire(&id("a"), Some(other)).unwrap();
        let refused = counts.acquire(&id("a"), Some("127.0.0.1:1002".parse().unwrap()));
        assert!(refused.unwrap_err().to_string().contains("of spiffe://"));
        // Another identity is not affected by a's quota.
        let _d = counts.acquire(&id("b"), Some(other)).unwrap();
        drop(a);
        assert_eq!(counts.of(&id("a")), 2);
        counts.acquire(&id("a"), Some(conn)).unwrap();
    }

    #[test]
    fn lengths_are_checked_with_the_limit_named() {
        assert!(at_most(3, 3, "x").is_ok());
        let e = at_most(4, 3, "services in one Watch").unwrap_err();
        assert_eq!(
            e.to_string(),
            "quota exceeded: services in one Watch (4) (limit 3)"
        );
    }
}
