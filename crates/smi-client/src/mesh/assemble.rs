//! Reassembling a Watch view that the control sent in chunks (`PolicyUpdate.continued`): the
//! first chunk carries the policy and the trust bundle, later ones more endpoints, and a
//! service's endpoints may span chunks. Nothing is applied until the last chunk is in.

use prost::Message;
use smi_core::proto::v1;

/// The most a reassembled view may hold; a control sending more is refused (and reported), so
/// a broken or hostile control cannot make a workload buffer without end. Endpoints are counted
/// too: decoded, one costs far more than its few encoded bytes.
pub const MAX_VIEW_BYTES: usize = 64 * 1024 * 1024;
pub const MAX_VIEW_ENDPOINTS: usize = 1_000_000;

#[derive(Debug, Default)]
pub(super) struct Assembler {
    pending: Option<v1::PolicyUpdate>,
    bytes: usize,
    endpoints: usize,
}

impl Assembler {
    /// The whole view once its last chunk is in; `None` while more are to come.
    pub fn push(&mut self, chunk: v1::PolicyUpdate) -> Result<Option<v1::PolicyUpdate>, String> {
        let size = chunk.encoded_len();
        let endpoints: usize = chunk.endpoints.iter().map(|s| s.endpoints.len()).sum();
        let mut whole = match self.pending.take() {
            Some(mut pending) if pending.version == chunk.version => {
                self.bytes += size;
                self.endpoints += endpoints;
                append(&mut pending.endpoints, chunk.endpoints);
                pending.continued = chunk.continued;
                pending
            }
            // A first chunk (a partial view of another version, which cannot happen on one
            // stream, is dropped rather than mixed in).
            _ => {
                self.bytes = size;
                self.endpoints = endpoints;
                chunk
            }
        };
        if self.bytes > MAX_VIEW_BYTES || self.endpoints > MAX_VIEW_ENDPOINTS {
            let (bytes, endpoints) = (self.bytes, self.endpoints);
            *self = Assembler::default();
            return Err(format!(
                "the view of version {} is over the limit ({bytes} bytes, {endpoints} endpoints; at most {MAX_VIEW_BYTES} bytes and {MAX_VIEW_ENDPOINTS} endpoints)",
                whole.version
            ));
        }
        if whole.continued {
            self.pending = Some(whole);
            return Ok(None);
        }
        whole.continued = false;
        *self = Assembler::default();
        Ok(Some(whole))
    }
}

/// Appends a chunk's services; the first may continue the last one already there.
fn append(into: &mut Vec<v1::ServiceEndpoints>, more: Vec<v1::ServiceEndpoints>) {
    for service in more {
        match into.last_mut() {
            Some(last) if last.namespace == service.namespace && last.name == service.name => {
                last.endpoints.extend(service.endpoints);
            }
            _ => into.push(service),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn endpoints(service: &str, addrs: &[&str]) -> v1::ServiceEndpoints {
        v1::ServiceEndpoints {
            namespace: "shop".into(),
            name: service.into(),
            endpoints: addrs
                .iter()
                .map(|a| v1::Endpoint {
                    address: (*a).into(),
                    port: 80,
                    identity: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn chunks_are_held_until_the_last_and_a_split_service_is_joined() {
        let mut a = Assembler::default();
        let first = v1::PolicyUpdate {
            version: 3,
            policy: Some(v1::Policy::default()),
            endpoints: vec![endpoints("a", &["10.0.0.1"]), endpoints("b", &["10.0.0.2"])],
            continued: true,
            ..Default::default()
        };
        assert_eq!(a.push(first).unwrap(), None);
        let last = v1::PolicyUpdate {
            version: 3,
            endpoints: vec![endpoints("b", &["10.0.0.3"]), endpoints("c", &["10.0.0.4"])],
            ..Default::default()
        };
        let whole = a.push(last).unwrap().unwrap();
        assert!(whole.policy.is_some());
        assert!(!whole.continued);
        assert_eq!(
            whole.endpoints,
            vec![
                endpoints("a", &["10.0.0.1"]),
                endpoints("b", &["10.0.0.2", "10.0.0.3"]),
                endpoints("c", &["10.0.0.4"]),
            ]
        );
        // A single-message view passes straight through.
        let one = v1::PolicyUpdate {
            version: 4,
            ..Default::default()
        };
        assert_eq!(a.push(one.clone()).unwrap(), Some(one));
    }

    #[test]
    fn a_view_without_end_is_refused() {
        let mut a = Assembler::default();
        let chunk = v1::PolicyUpdate {
            version: 1,
            trust_bundle_der: vec![vec![0; 1024 * 1024]],
            continued: true,
            ..Default::default()
        };
        let mut refused = None;
        for _ in 0..100 {
            if let Err(e) = a.push(chunk.clone()) {
                refused = Some(e);
                break;
            }
        }
        assert!(refused.is_some_and(|e| e.contains("over")));
    }
}
