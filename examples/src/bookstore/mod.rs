//! The bookstore demo: a control service and five meshed workloads, each its own process (this
//! binary re-executed in a role), on 127.0.0.1.
//!
//! bookbuyer and bookthief buy books from `bookstore.bookstore`; a TrafficSplit sends half of
//! the requests to bookstore-v1 and half to bookstore-v2; SMI policy lets bookbuyer buy and not
//! bookthief; the bookstores restock from bookwarehouse. The supervisor shows what each client
//! got, which backend answered, and what the control's TrafficMetrics API says of each
//! workload (success rate, p99).

pub mod roles;
pub mod stats;
pub mod supervisor;
pub mod traffic;

/// Lines a role prints on stdout for the supervisor.
pub const READY: &str = "ready";
pub const STATS: &str = "stats ";

/// A workload of the demo: its identity, the services it serves and calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    pub role: &'static str,
    pub identity: &'static str,
    pub serves: &'static [&'static str],
    pub calls: &'static [&'static str],
}

pub const WORKLOADS: [Workload; 5] = [
    Workload {
        role: "bookwarehouse",
        identity: "bookwarehouse/bookwarehouse",
        serves: &["bookwarehouse/bookwarehouse"],
        calls: &[],
    },
    Workload {
        role: "bookstore-v1",
        identity: "bookstore/bookstore",
        serves: &["bookstore/bookstore", "bookstore/bookstore-v1"],
        calls: &["bookwarehouse/bookwarehouse"],
    },
    Workload {
        role: "bookstore-v2",
        identity: "bookstore/bookstore",
        serves: &["bookstore/bookstore", "bookstore/bookstore-v2"],
        calls: &["bookwarehouse/bookwarehouse"],
    },
    Workload {
        role: "bookbuyer",
        identity: "bookbuyer/bookbuyer",
        serves: &[],
        calls: &["bookstore/bookstore"],
    },
    Workload {
        role: "bookthief",
        identity: "bookthief/bookthief",
        serves: &[],
        calls: &["bookstore/bookstore"],
    },
];

pub fn workload(role: &str) -> Option<&'static Workload> {
    WORKLOADS.iter().find(|w| w.role == role)
}
