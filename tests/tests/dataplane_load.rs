//! The data plane end to end, in one test process: a caller under load loses no request while
//! certificates rotate or the control service restarts. A real control service, real workloads
//! (`Mesh`), real mTLS on 127.0.0.1. Every wait is on an event or a condition, bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use http::StatusCode;
use smi_client::{Mesh, MeshClient};
use smi_test_util::bookstore::{self, BUY, VERSIONS, WAIT, backends, caller, get};
use smi_test_util::{Control, admin, renewals, status_until};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Books bought in the background until [`Load::stop`].
struct Load {
    stop: watch::Sender<bool>,
    /// Requests answered 200 so far.
    answered: watch::Receiver<u64>,
    buying: JoinHandle<(u64, Vec<String>)>,
}

impl Load {
    fn start(mesh: &Mesh) -> Load {
        let (stop, stopped) = watch::channel(false);
        let (count, answered) = watch::channel(0);
        let buying = tokio::spawn(buy_until(mesh.clone(), stopped, count));
        Load {
            stop,
            answered,
            buying,
        }
    }

    /// Waits until `more` further requests have been answered 200 (bounded by `WAIT`).
    async fn answers(&mut self, more: u64, during: &str) {
        let target = *self.answered.borrow() + more;
        tokio::time::timeout(WAIT, self.answered.wait_for(|n| *n >= target))
            .await
            .unwrap_or_else(|_| panic!("{more} requests not answered {during} within {WAIT:?}"))
            .unwrap();
    }

    /// Stops buying; every request must have been answered 200. Returns how many were.
    async fn stop(self) -> u64 {
        self.stop.send(true).unwrap();
        let (ok, other) = self.buying.await.unwrap();
        assert!(
            other.is_empty(),
            "{} requests not answered 200: {:?}",
            other.len(),
            &other[..other.len().min(5)]
        );
        ok
    }
}

/// Buys books in a loop until `stop`, with a fresh client (new connections, new handshakes)
/// every 25 requests. Returns the number answered 200 and every other outcome.
async fn buy_until(
    mesh: Mesh,
    mut stop: watch::Receiver<bool>,
    answered: watch::Sender<u64>,
) -> (u64, Vec<String>) {
    let (mut ok, mut other) = (0, Vec::new());
    let mut client = MeshClient::new(mesh.clone());
    for n in 0.. {
        if *stop.borrow_and_update() {
            break;
        }
        if n % 25 == 0 {
            client = MeshClient::new(mesh.clone());
        }
        match get(&client, BUY).await {
            Ok((StatusCode::OK, _)) => {
                ok += 1;
                answered.send_replace(ok);
            }
            Ok((status, backend)) => other.push(format!("{status} from {backend}")),
            Err(e) => other.push(e.to_string()),
        }
    }
    (ok, other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_under_load_drops_no_request() {
    // Certificates live 3 s: every workload renews about every 2 s.
    let mut cluster = bookstore::control_with_ttl(50, 50, Duration::from_secs(3)).await;
    let v1 = cluster
        .mesh("bookstore/bookstore", &["bookstore/bookstore-v1"], &[])
        .await;
    let _bookstores = backends(&cluster).await;
    let buyer = caller(&cluster, "bookbuyer/bookbuyer", VERSIONS).await;
    let first_certificate = buyer.credentials().chain_der()[0].clone();
    let load = Load::start(&buyer);
    // Wait (event: the credentials change) for two renewals of the buyer and of a server.
    for mesh in [&buyer, &v1] {
        renewals(mesh, 2, Duration::from_secs(10)).await;
    }
    let ok = load.stop().await;
    assert!(ok > 100, "only {ok} requests");
    assert_ne!(buyer.credentials().chain_der()[0], first_certificate);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_restart_under_load_drops_no_request() {
    let mut cluster = bookstore::control(50, 50).await;
    let _bookstores = backends(&cluster).await;
    let buyer = caller(&cluster, "bookbuyer/bookbuyer", VERSIONS).await;
    let mut load = Load::start(&buyer);

    cluster.shutdown().await;
    // The control is down: the workload notices, and keeps serving and calling.
    status_until(&buyer, "noticing the control is gone", WAIT, |m| {
        !m.status().connected
    })
    .await;
    load.answers(20, "while the control is down").await;
    // Started again on the same address and directories.
    cluster.start_again().await;
    // It reconnects, and the servers re-register.
    status_until(&buyer, "reconnecting", WAIT, |m| m.status().connected).await;
    let admin = cluster.running().admin_addr;
    admin::json_until(admin, "/debug/policy", WAIT, |policy| {
        policy.to_string().matches("\"port\"").count() >= 2
    })
    .await;
    load.answers(20, "after the control came back").await;
    load.stop().await;
    assert!(buyer.status().ready);
    cluster.shutdown().await;
}
