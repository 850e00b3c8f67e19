//! Waiting for a workload's state: each wait re-checks its condition on the workload's own
//! change notifications (a policy applied, a certificate replaced, the Watch stream opened or
//! lost), and panics naming what it waited for after a timeout. Nothing here sleeps.

use std::time::Duration;

use smi_client::Mesh;
use smi_client::mesh::PolicyState;

/// Waits until `done` holds for the mesh's policy, re-checking it on every applied update;
/// panics naming `what` after `timeout`.
pub async fn policy_until(
    mesh: &Mesh,
    what: &str,
    timeout: Duration,
    done: impl Fn(&PolicyState) -> bool,
) {
    let mut changes = mesh.changed();
    let waited = tokio::time::timeout(timeout, async {
        while !done(&mesh.policy_full()) {
            assert!(
                changes.changed().await.is_ok(),
                "{what}: the mesh stopped before it held"
            );
        }
    })
    .await;
    assert!(waited.is_ok(), "{what}: not within {timeout:?}");
}

/// Waits until `done` holds for the mesh, re-checking it on every status change (a certificate
/// replaced, the Watch stream opened or lost); panics naming `what` after `timeout`.
pub async fn status_until(
    mesh: &Mesh,
    what: &str,
    timeout: Duration,
    mut done: impl FnMut(&Mesh) -> bool,
) {
    let mut changes = mesh.status_changed();
    let waited = tokio::time::timeout(timeout, async {
        while !done(mesh) {
            assert!(
                changes.changed().await.is_ok(),
                "{what}: the mesh stopped before it held"
            );
        }
    })
    .await;
    assert!(waited.is_ok(), "{what}: not within {timeout:?}");
}

/// Waits for `renewals` new certificates of the mesh (each different from all before).
pub async fn renewals(mesh: &Mesh, renewals: usize, timeout: Duration) {
    let mut seen = vec![mesh.credentials().chain_der()[0].clone()];
    status_until(mesh, &format!("{renewals} renewals"), timeout, |m| {
        let now = m.credentials().chain_der()[0].clone();
        if !seen.contains(&now) {
            seen.push(now);
        }
        seen.len() > renewals
    })
    .await;
}
