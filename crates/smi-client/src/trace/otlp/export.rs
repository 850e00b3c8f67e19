//! The export task: waits for spans, gathers them into batches (full, or as old as the
//! configured delay), and sends each batch in one `Export` call. One call at a time: while it
//! runs, new spans wait in the queue, and past its bound they are dropped at the sender.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

use super::convert;
use super::{Counts, OtlpConfig, OtlpError};
use crate::trace::span::FinishedSpan;

/// A lazily connected channel to the collector (checked: `http://` with a host).
pub(super) fn channel(config: &OtlpConfig) -> Result<Channel, OtlpError> {
    let invalid = || OtlpError::Endpoint(config.endpoint.clone());
    let uri: http::Uri = config.endpoint.parse().map_err(|_| invalid())?;
    if uri.scheme_str() != Some("http") || uri.host().is_none_or(str::is_empty) {
        return Err(invalid());
    }
    let endpoint = Endpoint::from(uri)
        .connect_timeout(config.timeout)
        .timeout(config.timeout);
    Ok(endpoint.connect_lazy())
}

pub(super) async fn run(
    mut queue: mpsc::Receiver<FinishedSpan>,
    channel: Channel,
    config: OtlpConfig,
    counts: Arc<Counts>,
) {
    let mut client = TraceServiceClient::new(channel);
    let resource = convert::resource(&config.service_name);
    let mut batch = Vec::with_capacity(config.max_batch);
    // Whether the last export worked: a failure is logged once at `warn`, then at `debug`
    // until one works again.
    let mut healthy = true;
    loop {
        if queue.recv_many(&mut batch, config.max_batch).await == 0 {
            return; // Every sender is gone and the queue is empty.
        }
        let deadline = tokio::time::Instant::now() + config.delay;
        let mut open = true;
        while open && batch.len() < config.max_batch {
            let room = config.max_batch - batch.len();
            match tokio::time::timeout_at(deadline, queue.recv_many(&mut batch, room)).await {
                Ok(0) => open = false,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let spans = batch.len() as u64;
        let request = convert::request(resource.clone(), batch.drain(..));
        match client.export(request).await {
            Ok(response) => {
                let rejected = response
                    .into_inner()
                    .partial_success
                    .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0))
                    .min(spans);
                counts
                    .exported
                    .fetch_add(spans - rejected, Ordering::Relaxed);
                counts.failed.fetch_add(rejected, Ordering::Relaxed);
                healthy = true;
            }
            Err(status) => {
                counts.failed.fetch_add(spans, Ordering::Relaxed);
                if healthy {
                    tracing::warn!(endpoint = %config.endpoint, error = %status, spans, "OTLP export failed; dropping the batch");
                } else {
                    tracing::debug!(endpoint = %config.endpoint, error = %status, spans, "OTLP export failed; dropping the batch");
                }
                healthy = false;
            }
        }
        counts.calls.send_modify(|n| *n += 1);
        if !open {
            return;
        }
    }
}
