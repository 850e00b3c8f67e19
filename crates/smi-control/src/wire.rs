//! The API edge: every conversion between the control's domain types and the protobuf messages
//! of the control API (`smi_core::proto::v1`). Inside the control, endpoints are
//! ([`ServiceRef`], [`SocketAddr`], [`SpiffeId`]), a workload's view is a [`View`], and the
//! policy is the `smi_core` model; messages are made here, just before they are sent, and read
//! here, just after they arrive. (The model's own conversions are `smi_core::proto`'s.)
//! Telemetry reports are read in [`report`].

pub mod report;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use smi_core::proto::v1;
use smi_core::{IdentityError, ServiceRef, SpiffeId};
use smi_tls::PeerIdentity;

use crate::ca::Issued;
use crate::hub::{Endpoint, ServiceEndpoints, Subscription, View};
use crate::registry::{RegisterError, Registered, Registry};
use crate::status::unix;

// === out: views, certificates, leases ===

/// A view as one `PolicyUpdate` (not yet in chunks: [`crate::chunk`]).
pub fn policy_update(view: &View<'_>) -> v1::PolicyUpdate {
    v1::PolicyUpdate {
        version: view.version,
        policy: Some(v1::Policy {
            traffic_targets: view.targets.iter().map(|&t| t.into()).collect(),
            http_route_groups: view.route_groups.iter().map(|&g| g.into()).collect(),
            l4_routes: view.l4_routes.iter().map(|&r| r.into()).collect(),
            traffic_splits: view.splits.iter().map(|&s| s.into()).collect(),
        }),
        endpoints: view.endpoints.iter().map(service_endpoints).collect(),
        trust_bundle_der: certificates(view.bundle),
        revoked_identities: view.revoked.iter().map(ToString::to_string).collect(),
        permissive: view.permissive,
        endpoints_partial: view.endpoints_partial,
        // Set by the Watch stream when it sends this view in chunks.
        continued: false,
    }
}

fn service_endpoints(s: &ServiceEndpoints<'_>) -> v1::ServiceEndpoints {
    v1::ServiceEndpoints {
        namespace: s.service.namespace.clone(),
        name: s.service.name.clone(),
        endpoints: s.endpoints.iter().map(endpoint).collect(),
    }
}

pub fn endpoint(e: &Endpoint) -> v1::Endpoint {
    v1::Endpoint {
        address: e.address.ip().to_string(),
        port: u32::from(e.address.port()),
        identity: e.identity.to_string(),
    }
}

/// The answer to a Certify call: the certificate issued, and the trust bundle.
pub fn certified(issued: &Issued, bundle: &[CertificateDer<'_>]) -> v1::CertifyResponse {
    v1::CertifyResponse {
        certificate_chain_der: certificates(&issued.chain),
        trust_bundle_der: certificates(bundle),
        not_after_unix: i64::try_from(unix(issued.not_after)).unwrap_or(i64::MAX),
        spiffe_id: issued.spiffe_id.to_string(),
    }
}

/// What a Register stream answers: the lease, and how many endpoints it holds.
pub fn lease(lease: Duration, registered: usize) -> v1::RegisterResponse {
    v1::RegisterResponse {
        lease_seconds: u32::try_from(lease.as_secs()).unwrap_or(u32::MAX),
        registered: u32::try_from(registered).unwrap_or(u32::MAX),
    }
}

fn certificates(certs: &[CertificateDer<'_>]) -> Vec<Vec<u8>> {
    certs.iter().map(|c| c.to_vec()).collect()
}

// === in: subscriptions, registrations ===

/// What a Watch asks for, for the caller `peer`: the services it names (`ns/name`, or `*` for
/// all), the services its certificate lets it serve.
pub fn subscription(
    peer: &PeerIdentity,
    services: &[String],
) -> Result<Subscription, IdentityError> {
    let calls = services
        .iter()
        .filter(|s| *s != "*")
        .map(|s| s.parse::<ServiceRef>())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Subscription {
        identity: peer.spiffe_id.account.clone(),
        serves: peer.serves.clone(),
        calls,
        all: services.iter().any(|s| s == "*"),
    })
}

impl Registry {
    /// Registers a request off the wire for `identity`, which may serve `granted`: each entry
    /// read and checked in order (its service, that the credential grants it, its address,
    /// its port); the first problem refuses the whole request.
    pub fn register(
        &self,
        identity: &SpiffeId,
        granted: &[ServiceRef],
        request: &[v1::EndpointRegistration],
    ) -> Result<u64, RegisterError> {
        self.max_per_registration(request.len())?;
        let endpoints = request
            .iter()
            .enumerate()
            .map(|(index, e)| registered(index, e, granted))
            .collect::<Result<Vec<_>, _>>()?;
        self.add(identity, endpoints)
    }
}

fn registered(
    index: usize,
    e: &v1::EndpointRegistration,
    granted: &[ServiceRef],
) -> Result<Registered, RegisterError> {
    let invalid = |message: String| RegisterError::Invalid { index, message };
    let service: ServiceRef = e
        .service
        .parse()
        .map_err(|err| invalid(format!("service: {err}")))?;
    Registry::check_granted(granted, &service)?;
    let ip: IpAddr = e
        .address
        .parse()
        .map_err(|_| invalid(format!("address: {:?} is not an IP address", e.address)))?;
    let port = u16::try_from(e.port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| invalid(format!("port: {} is not a port", e.port)))?;
    Ok(Registered {
        service,
        address: SocketAddr::new(ip, port),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Hub;

    const ID: &str = "spiffe://cluster.local/ns/shop/sa/web";

    fn entry(service: &str, address: &str, port: u32) -> v1::EndpointRegistration {
        v1::EndpointRegistration {
            service: service.into(),
            address: address.into(),
            port,
        }
    }

    #[test]
    fn a_registration_off_the_wire_reaches_views_as_the_same_endpoints() {
        let hub = Hub::new(false);
        let registry = Registry::new(hub.clone());
        let granted = [ServiceRef::new("shop", "web")];
        let id: SpiffeId = ID.parse().unwrap();
        registry
            .register(
                &id,
                &granted,
                &[
                    entry("shop/web", "::1", 8080),
                    entry("shop/web", "10.0.0.1", 80),
                ],
            )
            .unwrap();
        let published = hub.latest();
        let view = published.view(&Subscription {
            identity: id.account.clone(),
            serves: Vec::new(),
            calls: granted.to_vec(),
            all: false,
        });
        let update = policy_update(&view);
        assert_eq!(
            update.endpoints,
            [v1::ServiceEndpoints {
                namespace: "shop".into(),
                name: "web".into(),
                endpoints: vec![
                    v1::Endpoint {
                        address: "::1".into(),
                        port: 8080,
                        identity: ID.into()
                    },
                    v1::Endpoint {
                        address: "10.0.0.1".into(),
                        port: 80,
                        identity: ID.into()
                    },
                ],
            }]
        );
        assert_eq!(update.version, published.version);
        assert!(update.endpoints_partial);
    }

    #[test]
    fn each_entry_is_checked_in_order_and_the_first_problem_refuses_the_request() {
        let registry = Registry::new(Hub::new(false));
        let granted = [ServiceRef::new("shop", "web")];
        let id: SpiffeId = ID.parse().unwrap();
        let refused = |request: &[v1::EndpointRegistration]| {
            registry
                .register(&id, &granted, request)
                .unwrap_err()
                .to_string()
        };
        // Not granted comes before the bad address of the same entry.
        assert_eq!(
            refused(&[entry("shop/db", "nowhere", 0)]),
            "the credential does not grant serving shop/db (it grants: shop/web)"
        );
        assert_eq!(
            refused(&[
                entry("shop/web", "10.0.0.1", 80),
                entry("shop/web", "nowhere", 80)
            ]),
            "endpoints[1]: address: \"nowhere\" is not an IP address"
        );
        assert_eq!(
            refused(&[entry("shop/web", "10.0.0.1", 70_000)]),
            "endpoints[0]: port: 70000 is not a port"
        );
        assert!(refused(&[entry("Shop", "10.0.0.1", 80)]).starts_with("endpoints[0]: service: "));
        assert_eq!(registry.endpoint_count(), 0);
    }

    #[test]
    fn a_watch_names_services_or_all_and_a_bad_name_is_an_error() {
        let peer = PeerIdentity {
            spiffe_id: ID.parse().unwrap(),
            serves: vec![ServiceRef::new("shop", "web")],
            not_after: std::time::SystemTime::now(),
            workload: None,
        };
        let sub = subscription(&peer, &["*".into(), "shop/db".into()]).unwrap();
        assert!(sub.all);
        assert_eq!(sub.calls, [ServiceRef::new("shop", "db")]);
        assert_eq!(sub.serves, peer.serves);
        assert!(subscription(&peer, &["no-slash".into()]).is_err());
    }
}
