//! [`EndpointSource`]: where the endpoints of services come from. Registrations by serving
//! workloads today ([`crate::registry::Registry`]); Kubernetes EndpointSlices next.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::watch;

/// A source of endpoints: which addresses serve which service, and the identity each server
/// must present.
///
/// The contract:
/// - A source is made with an [`EndpointSink`](crate::hub::EndpointSink), its own slot in the
///   hub ([`ControlBuilder::endpoint_source`](crate::serve::ControlBuilder::endpoint_source)
///   hands it one). Through it the source sets a service's whole list of endpoints at a time;
///   it can neither see nor change another source's endpoints. What workloads receive for a
///   service is every source's list for it, merged in the order the sources were added.
/// - A change to some services publishes those services only: the others' lists are shared
///   with the previous version, not rebuilt.
/// - Once the source has set every endpoint it knows of (a list returned, a lease waited out),
///   it calls [`EndpointSink::synced`](crate::hub::EndpointSink::synced). Until every source
///   has, views say `endpoints_partial`, and workloads merge what they receive into what they
///   know instead of dropping endpoints.
/// - [`run`](Self::run) drives the source until `stopping` turns true (a source fed by calls,
///   as the registry is by the Register API, may only wait there).
pub trait EndpointSource: Send + Sync + 'static {
    fn run(self: Arc<Self>, stopping: watch::Receiver<bool>) -> BoxFuture<'static, ()>;
}
