//! Run with: cargo fuzz run control_requests   (from fuzz/; needs nightly and cargo-fuzz)
//!
//! Arbitrary bytes as the messages a workload sends the control service (the first byte picks
//! the message), decoded and handled as the control's API does after authentication: a
//! WatchRequest's services parsed and its policy view computed, a RegisterRequest's endpoints
//! checked and registered (then removed), an AckRequest recorded, a ReportRequest read and
//! stored (twice: the retry must not count again). Used or refused, never a panic. (CertifyRequest's token and CSR have their own targets: `token`, `csr`.)
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use smi_control::distribute::{Hub, Subscription};
use smi_control::registry::Registry;
use smi_control::quota::Quotas;
use smi_control::status::Status;
use smi_control::telemetry::clock::SystemClock;
use smi_control::telemetry::store::{Ingested, StoreLimits, TelemetryStore};
use smi_control::wire::report::report;
use smi_core::proto::v1;
use smi_core::telemetry::Workload;
use smi_core::{ServiceRef, SpiffeId};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, message)) = data.split_first() else {
        return;
    };
    let hub = Hub::new(false);
    let identity: SpiffeId = "spiffe://cluster.local/ns/a/sa/b".parse().expect("an id");
    match kind % 4 {
        0 => {
            if let Ok(req) = v1::WatchRequest::decode(message) {
                let calls: Result<Vec<ServiceRef>, _> = req
                    .services
                    .iter()
                    .filter(|s| *s != "*")
                    .map(|s| s.parse::<ServiceRef>())
                    .collect();
                if let Ok(calls) = calls {
                    let subscription = Subscription {
                        identity: identity.account.clone(),
                        serves: Vec::new(),
                        calls,
                        all: req.services.iter().any(|s| s == "*"),
                    };
                    let _ = hub.latest().view(&subscription);
                }
            }
        }
        1 => {
            if let Ok(req) = v1::RegisterRequest::decode(message) {
                let registry = Registry::new(Arc::clone(&hub));
                let granted = [ServiceRef::new("a", "b")];
                if let Ok(id) = registry.register(&identity, &granted, &req.endpoints) {
                    registry.remove(id);
                }
            }
        }
        2 => {
            if let Ok(req) = v1::ReportRequest::decode(message) {
                let quotas = Quotas::default();
                let certified = Workload::new("a", "w", "w-0");
                if let Ok(read) = report(&identity, Some(&certified), req, &quotas) {
                    let store = TelemetryStore::new(Arc::new(SystemClock), StoreLimits::from(&quotas));
                    let first = store.ingest(&identity.account, read.clone());
                    let again = store.ingest(&identity.account, read);
                    if matches!(first, Ok(Ingested::Counted { .. })) {
                        assert_eq!(again, Ok(Ingested::Repeated), "a retried report counted twice");
                    }
                }
            }
        }
        _ => {
            if let Ok(ack) = v1::AckRequest::decode(message) {
                let status = Status::new();
                let rejected = (!ack.accepted).then(|| ack.error.clone());
                status.ack(&identity.to_string(), &ack.workload, ack.version, rejected);
            }
        }
    }
});
