//! The policy watch: one Watch stream, reopened with backoff; each update is compiled, applied
//! and acknowledged (or rejected, with the reason, keeping the last good state). A view sent in
//! chunks is applied when its last chunk is in. Failures are counted in the workload's status
//! (`watch_failures`, `last_watch_error`) until an update arrives again.
//!
//! A view is applied only if it is newer than the state held
//! ([`is_newer_view`](smi_core::proto::is_newer_view)): replicas sharing a store number a state
//! by the store's revision, so a view of an older revision comes from a replica that is behind
//! the one this workload heard from last (it failed over) and is not applied; another version
//! of the same revision is (replicas may count their own publishes differently, and the newest
//! received wins); an equal version is the state already held (sent again on every reconnect).
//! The stream stays open: once that replica catches up, its view is newer and applied.

use std::sync::Arc;

use smi_core::proto::v1;

use super::Inner;
use super::assemble::Assembler;
use super::backoff::Backoff;
use super::state::PolicyState;
use crate::control::{ClientError, Credentials, connect, control_client};

pub(super) async fn run(inner: Arc<Inner>) {
    let mut backoff = Backoff::new();
    loop {
        match session(&inner, &mut backoff).await {
            Ok(()) => tracing::info!("the control service ended the policy stream; reconnecting"),
            Err(e) => {
                tracing::warn!(error = %e, "policy stream failed; keeping the last policy");
                inner.watch_failed(e.to_string());
            }
        }
        inner.set_connected(false);
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

async fn session(inner: &Inner, backoff: &mut Backoff) -> Result<(), ClientError> {
    let channel = connect(&inner.config.control, &inner.credentials.load()).await?;
    let mut client = control_client(channel);
    let mut stream = client
        .watch(v1::WatchRequest {
            services: inner.config.calls.clone(),
            workload: inner.config.workload.clone(),
        })
        .await?
        .into_inner();
    inner.set_connected(true);
    let mut assembler = Assembler::default();
    while let Some(chunk) = stream.message().await? {
        let Some(update) = assembler.push(chunk).map_err(ClientError::Invalid)? else {
            continue;
        };
        backoff.reset();
        inner.watch_recovered();
        let ack = receive(inner, &update);
        if let Err(e) = client.ack(ack).await {
            tracing::debug!(error = %e, "acknowledgement not delivered");
        }
    }
    Ok(())
}

/// Applies a whole view if it is newer than the state held, and says what to acknowledge.
fn receive(inner: &Inner, update: &v1::PolicyUpdate) -> v1::AckRequest {
    let version = update.version;
    let held = inner.policy.load().version;
    let applied = if smi_core::proto::is_newer_view(version, held) {
        apply(inner, update)
    } else {
        if version != held {
            tracing::info!(
                version,
                held,
                "policy view from a control that is behind; keeping the newer one held"
            );
        } else {
            tracing::debug!(version, "policy view already held");
        }
        // Acknowledged as received, not rejected: nothing is wrong with it, and the workload
        // holds this state or a newer one (a rejection would show as a bad policy).
        Ok(())
    };
    let (accepted, error) = match applied {
        Ok(()) => (true, String::new()),
        Err(error) => {
            tracing::warn!(version, %error, "policy update rejected; keeping the last good one");
            (false, error)
        }
    };
    v1::AckRequest {
        version,
        accepted,
        error,
        workload: inner.config.workload.clone(),
    }
}

fn apply(inner: &Inner, update: &v1::PolicyUpdate) -> Result<(), String> {
    let mut state = PolicyState::compile(update, &inner.policy.identity().trust_domain)?;
    state.subscribed_to_all = inner.config.calls.iter().any(|c| c == "*");
    if update.endpoints_partial {
        state.keep_endpoints_unknown_here(&inner.policy.load());
    }
    let credentials = inner.credentials.load();
    if !update.trust_bundle_der.is_empty() && update.trust_bundle_der != credentials.bundle_der() {
        let renewed = Credentials::clone(&credentials)
            .with_bundle(update.trust_bundle_der.clone())
            .map_err(|e| e.to_string())?;
        inner.set_credentials(renewed).map_err(|e| e.to_string())?;
        tracing::info!(
            roots = update.trust_bundle_der.len(),
            "trust bundle updated"
        );
    }
    inner.policy.store(state);
    tracing::debug!(version = update.version, "policy applied");
    Ok(())
}

#[cfg(test)]
mod tests;
