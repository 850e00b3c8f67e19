#![allow(clippy::unwrap_used)]

use smi_core::telemetry::Workload;

use super::*;
use crate::MeshConfig;
use crate::control::ControlAddr;
use crate::metrics::Metrics;
use crate::test_util::TestCa;

/// A mesh's state before its first policy, with no task running and no control behind it.
fn fresh_inner() -> Inner {
    let credentials = TestCa::new().credentials("bookbuyer/bookbuyer", &[]);
    let config = MeshConfig::new(ControlAddr::parse("127.0.0.1:1").unwrap(), "token");
    let workload = Workload::new("bookbuyer", "bookbuyer", "bookbuyer-0");
    Inner::new(config, credentials, workload, Metrics::new()).unwrap()
}

/// A view at `version` in which `bookstore/bookstore` has one endpoint, at `ip`.
fn view(version: u64, ip: &str) -> v1::PolicyUpdate {
    v1::PolicyUpdate {
        version,
        policy: Some(v1::Policy::default()),
        endpoints: vec![v1::ServiceEndpoints {
            namespace: "bookstore".into(),
            name: "bookstore".into(),
            endpoints: vec![v1::Endpoint {
                address: ip.into(),
                port: 80,
                identity: "spiffe://cluster.local/ns/bookstore/sa/bookstore".into(),
            }],
        }],
        ..Default::default()
    }
}

/// The version and the endpoint IP of the state held.
fn held(inner: &Inner) -> (u64, String) {
    let state = inner.policy.load();
    let endpoints = state.endpoints("bookstore", "bookstore");
    (state.version, endpoints[0].addr.ip().to_string())
}

/// The version a replica on a shared store gives the `n`th publish at `revision`.
fn at(revision: u64, n: u64) -> u64 {
    (revision << smi_core::proto::VERSION_REVISION_SHIFT) + n
}

#[test]
fn a_view_of_an_older_revision_is_not_applied_and_a_newer_one_is() {
    let inner = fresh_inner();
    let mut changed = inner.policy.changed();

    let ack = receive(&inner, &view(at(5, 0), "10.0.0.5"));
    assert_eq!((ack.version, ack.accepted), (at(5, 0), true));
    assert_eq!(held(&inner), (at(5, 0), "10.0.0.5".to_owned()));
    assert!(changed.has_changed().unwrap());
    changed.borrow_and_update();

    // From a replica that is behind: kept out, acknowledged as received, nobody woken.
    let ack = receive(&inner, &view(at(3, 2), "10.0.0.3"));
    assert_eq!(
        (ack.version, ack.accepted, ack.error.as_str()),
        (at(3, 2), true, "")
    );
    assert_eq!(held(&inner), (at(5, 0), "10.0.0.5".to_owned()));
    assert!(!changed.has_changed().unwrap());

    // The same version again (a reconnect): the state held stays.
    let ack = receive(&inner, &view(at(5, 0), "10.0.0.55"));
    assert!(ack.accepted);
    assert_eq!(held(&inner), (at(5, 0), "10.0.0.5".to_owned()));
    assert!(!changed.has_changed().unwrap());

    // The same revision from a replica that counted its own publishes differently: the
    // newest received wins, lower count or not.
    receive(&inner, &view(at(5, 3), "10.0.0.53"));
    assert_eq!(held(&inner), (at(5, 3), "10.0.0.53".to_owned()));
    receive(&inner, &view(at(5, 1), "10.0.0.51"));
    assert_eq!(held(&inner), (at(5, 1), "10.0.0.51".to_owned()));
    changed.borrow_and_update();

    // That replica catches up: its newer revision is applied.
    let ack = receive(&inner, &view(at(6, 0), "10.0.0.6"));
    assert_eq!((ack.version, ack.accepted), (at(6, 0), true));
    assert_eq!(held(&inner), (at(6, 0), "10.0.0.6".to_owned()));
    assert_eq!(*changed.borrow_and_update(), at(6, 0));
}

#[test]
fn a_newer_view_that_does_not_compile_is_rejected_and_the_state_held_stays() {
    let inner = fresh_inner();
    receive(&inner, &view(5, "10.0.0.5"));
    let ack = receive(&inner, &view(6, "not an address"));
    assert_eq!((ack.version, ack.accepted), (6, false));
    assert!(ack.error.contains("not an address"), "{}", ack.error);
    assert_eq!(held(&inner), (5, "10.0.0.5".to_owned()));
}
