//! The control service end to end, the endpoint registry: registered endpoints reach callers
//! with their identity and leave with the stream or when heartbeats stop, and a credential
//! registers only what it may serve. A real in-process control service on 127.0.0.1, real TLS,
//! real gRPC clients (smi-client). Every wait is on an event, bounded by a timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use smi_control::serve::ServeConfig;
use smi_core::proto::v1::{self, control_client::ControlClient};
use smi_test_util::bookstore::{ACCESS, WAIT};
use smi_test_util::watch::{self, next_update, update_until};
use smi_test_util::{Control, LocalControl, assert_status};
use tonic::Streaming;

/// A control service over the bookstore access policy, whose registrations lapse after 2 s
/// without a heartbeat.
async fn control() -> LocalControl {
    LocalControl::start_with(&[("access.yaml", ACCESS)], |config| ServeConfig {
        lease: Duration::from_secs(2),
        ..config
    })
    .await
}

async fn register(
    client: &mut ControlClient<tonic::transport::Channel>,
    service: &str,
    port: u32,
) -> Result<
    (
        tokio::sync::mpsc::Sender<v1::RegisterRequest>,
        Streaming<v1::RegisterResponse>,
    ),
    tonic::Status,
> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(v1::RegisterRequest {
        endpoints: vec![v1::EndpointRegistration {
            service: service.into(),
            address: "127.0.0.1".into(),
            port,
        }],
    })
    .await
    .unwrap();
    let responses = client
        .register(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    Ok((tx, responses))
}

fn endpoints_of<'a>(update: &'a v1::PolicyUpdate, service: &str) -> Vec<&'a v1::Endpoint> {
    update
        .endpoints
        .iter()
        .filter(|e| format!("{}/{}", e.namespace, e.name) == service)
        .flat_map(|e| e.endpoints.iter())
        .collect()
}

#[tokio::test]
async fn registered_endpoints_reach_callers_with_their_identity_and_leave_with_the_stream() {
    let mut control = control().await;
    let server = control
        .enroll("bookstore/bookstore", &["bookstore/bookstore-v1"])
        .await;
    let caller = control.enroll("bookbuyer/bookbuyer", &[]).await;
    let mut watch = watch::open(
        &control,
        &caller,
        v1::WatchRequest {
            services: vec!["bookstore/bookstore-v1".into()],
            workload: "buyer".into(),
        },
    )
    .await;
    assert!(endpoints_of(&next_update(&mut watch).await, "bookstore/bookstore-v1").is_empty());

    let mut server_client = control.client(&server).await;
    let (heartbeats, mut responses) = register(&mut server_client, "bookstore/bookstore-v1", 8080)
        .await
        .unwrap();
    let ack = tokio::time::timeout(WAIT, responses.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(ack.registered, 1);
    let update = update_until(&mut watch, |u| {
        !endpoints_of(u, "bookstore/bookstore-v1").is_empty()
    })
    .await;
    let ep = endpoints_of(&update, "bookstore/bookstore-v1")[0].clone();
    assert_eq!((ep.address.as_str(), ep.port), ("127.0.0.1", 8080));
    assert_eq!(
        ep.identity,
        "spiffe://cluster.local/ns/bookstore/sa/bookstore"
    );

    drop(heartbeats);
    drop(responses);
    update_until(&mut watch, |u| {
        endpoints_of(u, "bookstore/bookstore-v1").is_empty()
    })
    .await;
    control.shutdown().await;
}

#[tokio::test]
async fn a_registration_for_a_service_the_credential_does_not_grant_is_refused() {
    let mut control = control().await;
    let thief = control
        .enroll("bookthief/bookthief", &["bookthief/bookthief"])
        .await;
    let mut client = control.client(&thief).await;
    let status = register(&mut client, "bookstore/bookstore-v1", 8080)
        .await
        .unwrap_err();
    assert_status(
        &status,
        tonic::Code::PermissionDenied,
        "does not grant serving bookstore/bookstore-v1",
    );
    control.shutdown().await;
}

#[tokio::test]
async fn endpoints_disappear_when_heartbeats_stop_within_the_lease() {
    let mut control = control().await;
    let server = control
        .enroll("bookstore/bookstore", &["bookstore/bookstore-v1"])
        .await;
    let caller = control.enroll("bookbuyer/bookbuyer", &[]).await;
    let mut watch = watch::open(
        &control,
        &caller,
        v1::WatchRequest {
            services: vec!["*".into()],
            workload: String::new(),
        },
    )
    .await;
    let mut server_client = control.client(&server).await;
    // Keep the stream open but silent: the 2 s lease lapses.
    let (_silent, _responses) = register(&mut server_client, "bookstore/bookstore-v1", 9000)
        .await
        .unwrap();
    update_until(&mut watch, |u| {
        !endpoints_of(u, "bookstore/bookstore-v1").is_empty()
    })
    .await;
    update_until(&mut watch, |u| {
        endpoints_of(u, "bookstore/bookstore-v1").is_empty()
    })
    .await;
    control.shutdown().await;
}
