//! Watch views in chunks: a view grows with the mesh (every endpoint of every service a workload
//! calls), and one message over the workload's decoder limit would fail its stream on every
//! retry, leaving it without revocations. A view over [`CHUNK_BYTES`] goes out as several
//! messages of one version, `continued` on all but the last; the first carries the policy and the
//! trust bundle, the rest only endpoints (a service's list may span chunks).

use prost::Message;
use smi_core::proto::v1;

/// The most a chunk carries, well under the 4 MiB that workloads decode
/// (`smi_core::proto::MAX_MESSAGE_BYTES`).
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// Protobuf framing of one `ServiceEndpoints` entry beyond its names and endpoints, and of one
/// endpoint beyond its fields: over-estimates, so that chunks stay under the budget.
const SERVICE_OVERHEAD: usize = 16;
const ENDPOINT_OVERHEAD: usize = 4;

/// `view` as messages of at most `budget` bytes each (one, when it fits). The policy and trust
/// bundle are assumed to fit in one chunk (policy files are bounded at load).
pub fn chunks(mut view: v1::PolicyUpdate, budget: usize) -> Vec<v1::PolicyUpdate> {
    if view.encoded_len() <= budget {
        return vec![view];
    }
    let services = std::mem::take(&mut view.endpoints);
    let mut chunker = Chunker {
        budget,
        template: v1::PolicyUpdate {
            version: view.version,
            permissive: view.permissive,
            endpoints_partial: view.endpoints_partial,
            ..Default::default()
        },
        size: view.encoded_len(),
        current: view,
        out: Vec::new(),
    };
    for service in services {
        chunker.start_service(service.namespace, service.name);
        for endpoint in service.endpoints {
            chunker.push(endpoint);
        }
    }
    chunker.finish()
}

struct Chunker {
    budget: usize,
    /// What every chunk after the first starts as.
    template: v1::PolicyUpdate,
    current: v1::PolicyUpdate,
    /// An upper bound of `current`'s encoded length.
    size: usize,
    out: Vec<v1::PolicyUpdate>,
}

impl Chunker {
    fn start_service(&mut self, namespace: String, name: String) {
        let header = namespace.len() + name.len() + SERVICE_OVERHEAD;
        if self.size + header > self.budget && !self.current.endpoints.is_empty() {
            self.flush();
        }
        self.size += header;
        self.current.endpoints.push(v1::ServiceEndpoints {
            namespace,
            name,
            endpoints: Vec::new(),
        });
    }

    fn push(&mut self, endpoint: v1::Endpoint) {
        let len = endpoint.encoded_len() + ENDPOINT_OVERHEAD;
        let open = self.current.endpoints.last();
        if self.size + len > self.budget && open.is_some_and(|s| !s.endpoints.is_empty()) {
            // The service goes on in the next chunk, under its own name again.
            let (namespace, name) = open
                .map(|s| (s.namespace.clone(), s.name.clone()))
                .unwrap_or_default();
            self.flush();
            self.start_service(namespace, name);
        }
        self.size += len;
        if let Some(open) = self.current.endpoints.last_mut() {
            open.endpoints.push(endpoint);
        }
    }

    fn flush(&mut self) {
        let full = std::mem::replace(&mut self.current, self.template.clone());
        self.out.push(full);
        self.size = self.current.encoded_len();
    }

    fn finish(mut self) -> Vec<v1::PolicyUpdate> {
        self.out.push(self.current);
        let last = self.out.len() - 1;
        for (i, chunk) in self.out.iter_mut().enumerate() {
            chunk.continued = i < last;
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(services: usize, per_service: usize) -> v1::PolicyUpdate {
        v1::PolicyUpdate {
            version: 7,
            policy: Some(v1::Policy::default()),
            trust_bundle_der: vec![vec![1; 600]],
            endpoints: (0..services)
                .map(|s| v1::ServiceEndpoints {
                    namespace: "shop".into(),
                    name: format!("svc-{s}"),
                    endpoints: (0..per_service)
                        .map(|e| v1::Endpoint {
                            address: format!("10.0.{}.{}", e / 256, e % 256),
                            port: 8080,
                            identity: "spiffe://cluster.local/ns/shop/sa/web".into(),
                        })
                        .collect(),
                })
                .collect(),
            ..Default::default()
        }
    }

    /// What a workload does with the chunks: the first, then every later one's endpoints.
    fn reassemble(chunks: Vec<v1::PolicyUpdate>) -> v1::PolicyUpdate {
        let mut iter = chunks.into_iter();
        let mut whole = iter.next().unwrap_or_default();
        for chunk in iter {
            for service in chunk.endpoints {
                match whole.endpoints.last_mut() {
                    Some(last)
                        if last.namespace == service.namespace && last.name == service.name =>
                    {
                        last.endpoints.extend(service.endpoints)
                    }
                    _ => whole.endpoints.push(service),
                }
            }
        }
        whole.continued = false;
        whole
    }

    #[test]
    fn a_view_that_fits_is_one_message() {
        let v = view(3, 10);
        assert_eq!(chunks(v.clone(), CHUNK_BYTES), vec![v]);
    }

    #[test]
    fn a_large_view_is_split_under_the_budget_and_reassembles_exactly() {
        for (services, per_service) in [(1, 100_000), (2_000, 50), (7, 9_999)] {
            let v = view(services, per_service);
            assert!(v.encoded_len() > CHUNK_BYTES);
            let parts = chunks(v.clone(), CHUNK_BYTES);
            assert!(parts.len() > 1);
            for (i, part) in parts.iter().enumerate() {
                assert!(
                    part.encoded_len() <= CHUNK_BYTES,
                    "chunk {i}: {}",
                    part.encoded_len()
                );
                assert_eq!(part.version, 7);
                assert_eq!(part.continued, i + 1 < parts.len());
                assert_eq!(part.policy.is_some(), i == 0);
            }
            assert_eq!(reassemble(parts), v, "{services} x {per_service}");
        }
    }
}
