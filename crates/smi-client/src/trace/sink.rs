//! Where finished spans go: a [`SpanSink`], held by the [`Handles`](crate::Handles) as a
//! [`TraceHandle`]. Without one (the default) no span is made: the layers only carry on a
//! `traceparent` that came in, and a request without one costs a header lookup and a
//! task-local read.

use std::sync::Arc;

use super::span::FinishedSpan;

/// Takes finished spans (an exporter, a test's recorder).
pub trait SpanSink: Send + Sync + 'static {
    /// Called on the request path as each span ends (when its response head, or its error, is
    /// ready): must return at once. Queue the span, drop it when the queue is full; never block
    /// or wait for I/O.
    fn finish(&self, span: FinishedSpan);
}

/// The process's span sink, or none. Cheap to clone.
#[derive(Clone, Default)]
pub struct TraceHandle(Option<Arc<dyn SpanSink>>);

impl TraceHandle {
    /// Spans go to `sink`.
    pub fn new(sink: impl SpanSink) -> Self {
        Self(Some(Arc::new(sink)))
    }

    /// Spans go to a sink that is shared with other owners.
    pub fn from_arc(sink: Arc<dyn SpanSink>) -> Self {
        Self(Some(sink))
    }

    /// No spans are made (the default).
    pub fn disabled() -> Self {
        Self(None)
    }

    /// From the environment: with the `otlp` feature, an OTLP/gRPC exporter when
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set (see
    /// `otlp::OtlpConfig::from_env`); otherwise none. Call it inside a Tokio runtime
    /// (the exporter runs as a task). A configuration that cannot be used is logged and
    /// leaves tracing off: traces are for looking at the mesh, not a reason to stop it.
    pub fn from_env() -> Self {
        #[cfg(feature = "otlp")]
        match super::otlp::OtlpExporter::from_env() {
            Ok(Some(exporter)) => return Self::new(exporter),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "OTLP trace export is off"),
        }
        #[cfg(not(feature = "otlp"))]
        if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
            tracing::debug!(
                "OTEL_EXPORTER_OTLP_ENDPOINT is set, but smi-client was built without the `otlp` feature"
            );
        }
        Self::disabled()
    }

    /// Whether spans are made.
    pub fn is_enabled(&self) -> bool {
        self.0.is_some()
    }

    pub fn sink(&self) -> Option<&Arc<dyn SpanSink>> {
        self.0.as_ref()
    }
}

impl std::fmt::Debug for TraceHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.is_enabled() {
            "enabled"
        } else {
            "disabled"
        };
        f.debug_tuple("TraceHandle").field(&state).finish()
    }
}
