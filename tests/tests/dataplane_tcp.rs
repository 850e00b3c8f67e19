//! The data plane end to end, in one test process: TCPRoutes. Enforced when a connection is
//! accepted, and on open connections when the policy changes. A real control service, real
//! workloads (`Mesh`), real mTLS on 127.0.0.1, policy changed by writing files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use smi_test_util::bookstore::{self, WAIT};
use smi_test_util::tls::tcp_echo;
use smi_test_util::{Control, EchoServer, policy_until};

/// A TCPRoute of `ports` on the warehouse, which bookbuyer may use.
fn tcp_policy(ports: &str) -> String {
    format!(
        "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {{name: echo-ports, namespace: bookwarehouse}}\nspec:\n  matches:\n    ports: {ports}\n---\napiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {{name: echo-clients, namespace: bookwarehouse}}\nspec:\n  destination: {{kind: ServiceAccount, name: bookwarehouse, namespace: bookwarehouse}}\n  sources:\n  - {{kind: ServiceAccount, name: bookbuyer, namespace: bookbuyer}}\n  rules:\n  - {{kind: TCPRoute, name: echo-ports}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_routes_are_enforced_at_accept_and_open_connections_close_when_revoked() {
    use tokio::io::AsyncReadExt;
    let mut cluster = bookstore::control(50, 50).await;
    cluster.write_policy("tcp.yaml", &tcp_policy("[]"));
    let server = cluster
        .mesh(
            "bookwarehouse/bookwarehouse",
            &["bookwarehouse/bookwarehouse"],
            &[],
        )
        .await;
    let echo = EchoServer::start(&server).await;
    let addr = echo.addr;
    let buyer = cluster.mesh("bookbuyer/bookbuyer", &[], &[]).await;
    let thief = cluster.mesh("bookthief/bookthief", &[], &[]).await;
    // The server has the TCP policy once its snapshot lists the target.
    policy_until(&server, "the TCP policy", WAIT, |p| {
        p.snapshot
            .policy()
            .targets
            .iter()
            .any(|t| t.meta.name == "echo-clients")
    })
    .await;

    let mut open = tcp_echo(&buyer, addr).await.expect("the buyer is allowed");
    assert!(
        tcp_echo(&thief, addr).await.is_err(),
        "the thief must not get an echo"
    );

    // Only port 1 now: the open connection is closed within a second.
    let changed = Instant::now();
    cluster.write_policy("tcp.yaml", &tcp_policy("[1]"));
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(WAIT, open.read(&mut buf))
        .await
        .expect("the connection is closed within 5 s");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        changed.elapsed() < Duration::from_secs(1),
        "closing took {:?}",
        changed.elapsed()
    );
    assert!(
        tcp_echo(&buyer, addr).await.is_err(),
        "new connections are refused too"
    );
    drop(echo);
    cluster.shutdown().await;
}
