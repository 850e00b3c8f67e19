//! The policy watch: one Watch stream, reopened with backoff; each update is compiled, applied
//! and acknowledged (or rejected, with the reason, keeping the last good state). A view sent in
//! chunks is applied when its last chunk is in. Failures are counted in the workload's status
//! (`watch_failures`, `last_watch_error`) until an update arrives again.

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
        let version = update.version;
        let ack = match apply(inner, &update) {
            Ok(()) => v1::AckRequest {
                version,
                accepted: true,
                error: String::new(),
                workload: inner.config.workload.clone(),
            },
            Err(error) => {
                tracing::warn!(version, %error, "policy update rejected; keeping the last good one");
                v1::AckRequest {
                    version,
                    accepted: false,
                    error,
                    workload: inner.config.workload.clone(),
                }
            }
        };
        if let Err(e) = client.ack(ack).await {
            tracing::debug!(error = %e, "acknowledgement not delivered");
        }
    }
    Ok(())
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
