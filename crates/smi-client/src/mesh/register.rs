//! Endpoint registration: a Register stream held open while the workload serves, with
//! heartbeats at a third of the lease; reopened with backoff if it breaks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use smi_core::proto::v1;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Inner;
use super::backoff::Backoff;
use crate::control::{ClientError, connect, control_client};

/// Keeps an endpoint registered; dropping it ends the registration.
#[derive(Debug)]
pub struct Registration {
    task: JoinHandle<()>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(super) fn start(inner: Arc<Inner>, service: String, addr: SocketAddr) -> Registration {
    let task = tokio::spawn(async move {
        let mut backoff = Backoff::new();
        loop {
            if let Err(e) = session(&inner, &service, addr, &mut backoff).await {
                tracing::warn!(%service, %addr, error = %e, "registration failed; retrying");
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    });
    Registration { task }
}

async fn session(
    inner: &Inner,
    service: &str,
    addr: SocketAddr,
    backoff: &mut Backoff,
) -> Result<(), ClientError> {
    let channel = connect(&inner.config.control, &inner.credentials.load()).await?;
    let message = v1::RegisterRequest {
        endpoints: vec![v1::EndpointRegistration {
            service: service.to_owned(),
            address: addr.ip().to_string(),
            port: u32::from(addr.port()),
        }],
    };
    let (tx, rx) = mpsc::channel(2);
    let _ = tx.send(message.clone()).await;
    let mut responses = control_client(channel)
        .register(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    let first = responses
        .message()
        .await?
        .ok_or_else(|| ClientError::Refused("registration stream closed".into()))?;
    tracing::info!(%service, %addr, "endpoint registered");
    backoff.reset();
    let beat = Duration::from_secs(u64::from(first.lease_seconds.max(1))) / 3;
    loop {
        tokio::select! {
            () = tokio::time::sleep(beat) => {
                if tx.send(message.clone()).await.is_err() {
                    return Ok(());
                }
            }
            response = responses.message() => {
                if response?.is_none() {
                    return Ok(());
                }
            }
        }
    }
}
