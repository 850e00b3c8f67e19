//! Request metrics of a workload, recorded with OpenTelemetry and rendered as Prometheus text.
//!
//! Two metrics, shared by the inbound and outbound layers of one process:
//! `smi_requests_total` (counter) and `smi_request_duration_seconds` (histogram, to the response
//! head; the counter is rendered from its counts). Their attributes are the one label schema of
//! [`schema`]: `direction`, then the [`EdgeLabels`] `source`, `destination` and `route`, and
//! `status`. Both sides record through the same layer, [`Record`].

mod layer;
mod schema;

pub use layer::{Record, RecordFuture, RecordLayer, ResponseStatus};
pub use schema::{Direction, EdgeLabels, Labelled, Observation, StringValue};

use std::fmt::Write;
use std::sync::{Arc, Weak};
use std::time::Duration;

use opentelemetry::metrics::{Histogram, MeterProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Temporality,
};

/// The request counter, rendered from the duration histogram's counts.
const REQUESTS: &str = "smi_requests_total";

/// Latency buckets, seconds: a proxyless hop is tens of microseconds, a slow backend seconds.
const BOUNDARIES: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    5.0,
];

/// The process's request metrics (cheap to clone).
///
/// One OpenTelemetry instrument, the duration histogram: `smi_requests_total` is rendered from
/// its per-series count. Each record costs an attribute-set lookup, so one instrument instead of
/// two halves the metrics work on the request path. Clones share one instrument (one reference
/// count per clone: each request's recorder holds one).
#[derive(Clone)]
pub struct Metrics(Arc<Instruments>);

struct Instruments {
    duration: Histogram<f64>,
    reader: SharedReader,
    _provider: SdkMeterProvider,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let reader = SharedReader(Arc::new(
            ManualReader::builder()
                .with_temporality(Temporality::Cumulative)
                .build(),
        ));
        let provider = SdkMeterProvider::builder()
            .with_reader(reader.clone())
            .build();
        let meter = provider.meter("smi-mesh");
        let duration = meter
            .f64_histogram("smi_request_duration")
            .with_unit("s")
            .with_description("Time to the response head.")
            .with_boundaries(BOUNDARIES.to_vec())
            .build();
        Self(Arc::new(Instruments {
            duration,
            reader,
            _provider: provider,
        }))
    }

    pub fn record(&self, o: Observation) {
        let attributes = [
            KeyValue::new("direction", o.direction.as_str()),
            KeyValue::new("source", o.labels.source),
            KeyValue::new("destination", o.labels.destination),
            KeyValue::new("route", o.labels.route),
            KeyValue::new("status", i64::from(o.status)),
        ];
        self.0
            .duration
            .record(o.duration.as_secs_f64(), &attributes);
    }

    /// Prometheus text exposition (version 0.0.4) of the current values.
    pub fn prometheus(&self) -> String {
        let mut collected = ResourceMetrics::default();
        if let Err(e) = self.0.reader.collect(&mut collected) {
            return format!("# collecting metrics failed: {e}\n");
        }
        let mut out = String::new();
        let histograms = collected
            .scope_metrics()
            .flat_map(|scope| scope.metrics())
            .filter_map(|metric| match metric.data() {
                AggregatedMetrics::F64(MetricData::Histogram(h)) => Some((metric, h)),
                _ => None,
            });
        for (metric, histogram) in histograms {
            let _ = writeln!(out, "# HELP {REQUESTS} Requests through the mesh layers.");
            let _ = writeln!(out, "# TYPE {REQUESTS} counter");
            for point in histogram.data_points() {
                let labels = labels(point.attributes(), None);
                let _ = writeln!(out, "{REQUESTS}{labels} {}", point.count());
            }
            let name = format!("{}_seconds", metric.name());
            let _ = writeln!(out, "# HELP {name} {}", metric.description());
            let _ = writeln!(out, "# TYPE {name} histogram");
            for point in histogram.data_points() {
                let mut cumulative = 0;
                let bounds: Vec<f64> = point.bounds().collect();
                for (i, count) in point.bucket_counts().enumerate() {
                    cumulative += count;
                    let le = bounds
                        .get(i)
                        .map_or_else(|| "+Inf".to_owned(), ToString::to_string);
                    let labels = labels(point.attributes(), Some(&le));
                    let _ = writeln!(out, "{name}_bucket{labels} {cumulative}");
                }
                let labels = labels(point.attributes(), None);
                let _ = writeln!(out, "{name}_sum{labels} {}", point.sum());
                let _ = writeln!(out, "{name}_count{labels} {}", point.count());
            }
        }
        out
    }
}

fn labels<'a>(attributes: impl Iterator<Item = &'a KeyValue>, le: Option<&str>) -> String {
    let mut parts: Vec<String> = attributes
        .map(|kv| {
            let value = match &kv.value {
                Value::String(s) => s.as_str().to_owned(),
                other => other.to_string(),
            };
            format!("{}=\"{}\"", kv.key.as_str(), escape(&value))
        })
        .collect();
    parts.sort();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `ManualReader` is not `Clone`, and the provider takes its reader by value: share it.
#[derive(Clone, Debug)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_render_as_prometheus_counters_and_histograms() {
        let metrics = Metrics::new();
        let observation = |status: u16, route: &'static str| Observation {
            direction: Direction::Inbound,
            labels: EdgeLabels {
                source: "spiffe://cluster.local/ns/a/sa/b".into(),
                destination: "bookstore/bookstore".into(),
                route: route.into(),
            },
            status,
            duration: Duration::from_micros(300),
        };
        metrics.record(observation(200, "bookstore/t rule 0 match buy"));
        metrics.record(observation(200, "bookstore/t rule 0 match buy"));
        metrics.record(observation(403, "denied"));
        let text = metrics.prometheus();
        assert!(text.contains("# TYPE smi_requests_total counter"), "{text}");
        assert!(
            text.contains("smi_requests_total{destination=\"bookstore/bookstore\",direction=\"inbound\",route=\"bookstore/t rule 0 match buy\",source=\"spiffe://cluster.local/ns/a/sa/b\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("status=\"403\"} 1"), "{text}");
        // 300 us falls in the 0.0005 bucket; cumulative counts include it from there on.
        assert!(text.contains("le=\"0.00025\"} 0"), "{text}");
        assert!(text.contains("le=\"0.0005\"} 2"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 2"), "{text}");
        assert!(
            text.contains("smi_request_duration_seconds_count{"),
            "{text}"
        );
    }
}
