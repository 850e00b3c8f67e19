//! OTLP/gRPC export of the mesh's spans (feature `otlp`): an [`OtlpExporter`] is a
//! [`SpanSink`] that queues each finished span (bounded: when the queue is full the span is
//! dropped and counted, the request never waits), and a task that sends them in batches with
//! the `opentelemetry-proto` `TraceService` client to a collector.
//!
//! The spans are sent as `ExportTraceServiceRequest`s built here rather than through
//! `opentelemetry_sdk`'s tracer: the mesh already has each span's ids, parent, times and
//! attributes when it ends, and the SDK's span processor would add its own context handling,
//! id generator and export thread between that and the same protobuf messages.
//!
//! Configuration comes from the standard variables ([`OtlpConfig::from_env`]). Only plaintext
//! `http://` endpoints (a collector on the node or beside the pod) are supported; a failed
//! batch is counted and dropped, not retried.

mod convert;
mod export;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::sink::SpanSink;
use super::span::FinishedSpan;

/// Where and how to export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpConfig {
    /// The collector's OTLP/gRPC endpoint, e.g. `http://127.0.0.1:4317`.
    pub endpoint: String,
    /// The `service.name` resource attribute. Default (as OpenTelemetry's):
    /// `unknown_service:<executable name>`.
    pub service_name: String,
    /// Spans waiting to be sent, at most (default 2048, `OTEL_BSP_MAX_QUEUE_SIZE`).
    pub max_queue: usize,
    /// Spans per export request, at most (default 512, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    pub max_batch: usize,
    /// How long a span waits for a batch to fill (default 5 s, `OTEL_BSP_SCHEDULE_DELAY`).
    pub delay: Duration,
    /// The limit on one export call, connecting included (default 10 s,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`).
    pub timeout: Duration,
}

/// Why export could not start.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("OTLP endpoint {0:?}: expected an http:// URL with a host (https is not supported)")]
    Endpoint(String),
    #[error("{0}={1:?}: expected a positive whole number")]
    Number(&'static str, String),
    #[error("OTEL_EXPORTER_OTLP_PROTOCOL={0:?}: this exporter speaks only grpc")]
    Protocol(String),
    #[error("the OTLP exporter must be started inside a Tokio runtime")]
    NoRuntime,
}

impl OtlpConfig {
    /// Export to `endpoint` with the defaults.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            service_name: default_service_name(),
            max_queue: 2048,
            max_batch: 512,
            delay: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
        }
    }

    /// From OpenTelemetry's variables: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (`None` when neither is set: no export),
    /// `OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` / `OTEL_EXPORTER_OTLP_TIMEOUT`,
    /// `OTEL_BSP_SCHEDULE_DELAY` (milliseconds), `OTEL_BSP_MAX_QUEUE_SIZE`,
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`; `OTEL_EXPORTER_OTLP_PROTOCOL`, if set, must be `grpc`.
    pub fn from_env() -> Result<Option<Self>, OtlpError> {
        Self::from_vars(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, OtlpError> {
        let Some(endpoint) = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
        else {
            return Ok(None);
        };
        if let Some(protocol) = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .filter(|p| p != "grpc")
        {
            return Err(OtlpError::Protocol(protocol));
        }
        let number = |name: &'static str| -> Result<Option<u64>, OtlpError> {
            var(name)
                .map(|v| match v.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(OtlpError::Number(name, v)),
                })
                .transpose()
        };
        let mut config = Self::new(endpoint);
        if let Some(name) = var("OTEL_SERVICE_NAME") {
            config.service_name = name;
        }
        let timeout = match number("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")? {
            Some(ms) => Some(ms),
            None => number("OTEL_EXPORTER_OTLP_TIMEOUT")?,
        };
        if let Some(ms) = timeout {
            config.timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = number("OTEL_BSP_SCHEDULE_DELAY")? {
            config.delay = Duration::from_millis(ms);
        }
        // Bounded: a typo must not make a queue that takes the memory of the process.
        let size = |n: u64| usize::try_from(n.min(1 << 20)).unwrap_or(1 << 20);
        if let Some(n) = number("OTEL_BSP_MAX_QUEUE_SIZE")? {
            config.max_queue = size(n);
        }
        if let Some(n) = number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")? {
            config.max_batch = size(n);
        }
        config.max_batch = config.max_batch.min(config.max_queue);
        Ok(Some(config))
    }

    #[must_use]
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = name.into();
        self
    }

    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    #[must_use]
    pub fn max_queue(mut self, spans: usize) -> Self {
        self.max_queue = spans.max(1);
        self.max_batch = self.max_batch.min(self.max_queue);
        self
    }
}

fn default_service_name() -> String {
    let exe = std::env::current_exe().ok();
    let name = exe
        .as_deref()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    format!("unknown_service:{name}")
}

/// Queues finished spans for export. Cheap to clone; the export task ends (after sending what
/// is queued) when the last clone is dropped.
#[derive(Clone)]
pub struct OtlpExporter {
    queue: mpsc::Sender<FinishedSpan>,
    counts: Arc<Counts>,
}

/// What became of the spans given to an exporter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Accepted by the collector.
    pub exported: u64,
    /// Not queued: the queue was full.
    pub dropped: u64,
    /// Sent in a batch that failed (or that the collector rejected).
    pub failed: u64,
}

#[derive(Debug, Default)]
struct Counts {
    exported: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    /// Export calls finished (bumped after the counts above).
    calls: watch::Sender<u64>,
}

impl OtlpExporter {
    /// Starts the export task (inside a Tokio runtime). The collector is connected to lazily,
    /// and again after a failure.
    pub fn start(config: OtlpConfig) -> Result<Self, OtlpError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| OtlpError::NoRuntime)?;
        let channel = export::channel(&config)?;
        let (queue, spans) = mpsc::channel(config.max_queue.max(1));
        let counts = Arc::new(Counts::default());
        runtime.spawn(export::run(spans, channel, config, counts.clone()));
        Ok(Self { queue, counts })
    }

    /// An exporter configured from the environment ([`OtlpConfig::from_env`]), or `None`.
    pub fn from_env() -> Result<Option<Self>, OtlpError> {
        OtlpConfig::from_env()?.map(Self::start).transpose()
    }

    /// The number of export calls finished so far, changing after each (with [`stats`]
    /// updated): to wait for an export to be done.
    ///
    /// [`stats`]: OtlpExporter::stats
    pub fn export_calls(&self) -> watch::Receiver<u64> {
        self.counts.calls.subscribe()
    }

    pub fn stats(&self) -> ExportStats {
        ExportStats {
            exported: self.counts.exported.load(Ordering::Relaxed),
            dropped: self.counts.dropped.load(Ordering::Relaxed),
            failed: self.counts.failed.load(Ordering::Relaxed),
        }
    }
}

impl SpanSink for OtlpExporter {
    fn finish(&self, span: FinishedSpan) {
        if self.queue.try_send(span).is_err() {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpExporter")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<Option<OtlpConfig>, OtlpError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        OtlpConfig::from_vars(|name| vars.get(name).cloned())
    }

    #[test]
    fn no_endpoint_means_no_export() {
        assert!(matches!(from(&[("OTEL_SERVICE_NAME", "x")]), Ok(None)));
    }

    #[test]
    fn the_standard_variables_configure_the_exporter() {
        let config = from(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_SERVICE_NAME", "bookstore"),
            ("OTEL_BSP_SCHEDULE_DELAY", "250"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "3000"),
        ]);
        let Ok(Some(config)) = config else {
            panic!("{config:?}");
        };
        assert_eq!(config.endpoint, "http://collector:4317");
        assert_eq!(config.service_name, "bookstore");
        assert_eq!(config.delay, Duration::from_millis(250));
        assert_eq!((config.max_queue, config.max_batch), (100, 100));
        assert_eq!(config.timeout, Duration::from_secs(3));
        let traces = from(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:4317"),
        ]);
        assert!(matches!(traces, Ok(Some(c)) if c.endpoint == "http://b:4317"));
    }

    #[test]
    fn unusable_settings_are_errors() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317");
        assert!(matches!(
            from(&[endpoint, ("OTEL_BSP_MAX_QUEUE_SIZE", "lots")]),
            Err(OtlpError::Number("OTEL_BSP_MAX_QUEUE_SIZE", _))
        ));
        assert!(matches!(
            from(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]),
            Err(OtlpError::Protocol(_))
        ));
        for bad in ["https://collector:4317", "collector:4317", "http://"] {
            assert!(
                matches!(
                    export::channel(&OtlpConfig::new(bad)),
                    Err(OtlpError::Endpoint(_))
                ),
                "{bad}"
            );
        }
    }
}
