//! The control service end to end, enrollment: join tokens buy certificates for exactly their
//! identity, bad tokens and CSRs are refused with a reason, renewal needs only the certificate,
//! and a restart keeps the CA. A real in-process control service on 127.0.0.1, real TLS, real
//! gRPC clients (smi-client), real files. Every wait is on an event, bounded by a timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use smi_client::control::{ClientError, enroll, renew};
use smi_core::ServiceRef;
use smi_core::proto::v1::{self, control_client::ControlClient};
use smi_test_util::bookstore::ACCESS;
use smi_test_util::watch::{self, next_update};
use smi_test_util::{Control, LocalControl, TokenSpec, assert_status, mint_token, refused};
use smi_tls::peer_identity;

/// A control service over the bookstore access policy.
async fn control() -> LocalControl {
    LocalControl::start(&[("access.yaml", ACCESS)]).await
}

/// A join token for `identity` (serving nothing) that lives `ttl`.
fn token(state: &Path, identity: &str, ttl: Duration) -> String {
    let spec = TokenSpec {
        ttl,
        ..TokenSpec::default()
    };
    mint_token(state, &identity.parse().unwrap(), &[], spec).token
}

#[tokio::test]
async fn a_join_token_yields_a_certificate_for_exactly_its_identity() {
    let mut control = control().await;
    let creds = control
        .enroll("bookstore/bookstore", &["bookstore/bookstore-v1"])
        .await;
    assert_eq!(
        creds.spiffe_id().to_string(),
        "spiffe://cluster.local/ns/bookstore/sa/bookstore"
    );
    let peer = peer_identity(&creds.chain_der()[0].clone().into()).unwrap();
    assert_eq!(peer.spiffe_id, *creds.spiffe_id());
    assert_eq!(
        peer.serves,
        vec![ServiceRef::new("bookstore", "bookstore-v1")]
    );
    control.shutdown().await;
}

#[tokio::test]
async fn expired_forged_and_foreign_tokens_are_refused_with_a_reason() {
    let mut control = control().await;
    let addr = control.addr();
    let expired = token(&control.state, "a/b", Duration::ZERO);
    assert!(refused(enroll(&addr, &expired).await).contains("expired"));

    // A token from another control service (another state directory, so another key) pins
    // the other CA: the TLS handshake with this control fails before any token is sent.
    let other = tempfile::tempdir().unwrap();
    let foreign = token(other.path(), "a/b", Duration::from_secs(60));
    assert!(matches!(
        enroll(&addr, &foreign).await,
        Err(ClientError::Connect { .. })
    ));

    // The same foreign token, but pinning this control's CA: refused by the control itself.
    let parsed = smi_core::token::parse(&foreign).unwrap();
    let our_token = token(&control.state, "a/b", Duration::from_secs(60));
    let ours = smi_core::token::parse(&our_token).unwrap();
    let mut claims = parsed.claims.clone();
    claims.ca = ours.claims.ca.clone();
    let repinned = smi_core::token::assemble(&claims.signing_input(), &parsed.mac);
    assert!(refused(enroll(&addr, &repinned).await).contains("another control service"));

    // A token altered to claim another identity.
    let mut claims = ours.claims.clone();
    claims.sub = "kube-system/admin".into();
    let forged = smi_core::token::assemble(&claims.signing_input(), &ours.mac);
    assert!(refused(enroll(&addr, &forged).await).contains("signature does not verify"));
    control.shutdown().await;
}

#[tokio::test]
async fn a_csr_asking_for_another_identity_is_refused() {
    let mut control = control().await;
    let token = token(
        &control.state,
        "bookbuyer/bookbuyer",
        Duration::from_secs(60),
    );
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::URI(
        "spiffe://cluster.local/ns/bookstore/sa/bookstore"
            .try_into()
            .unwrap(),
    )];
    let csr = params.serialize_request(&key).unwrap();
    let creds = control.enroll("bookbuyer/bookbuyer", &[]).await;
    let status = control
        .client(&creds)
        .await
        .certify(v1::CertifyRequest {
            csr_der: csr.der().to_vec(),
            token,
            names: None,
        })
        .await
        .unwrap_err();
    assert_status(
        &status,
        tonic::Code::PermissionDenied,
        "asks for spiffe://cluster.local/ns/bookstore/sa/bookstore",
    );
    control.shutdown().await;
}

#[tokio::test]
async fn a_workload_renews_over_mtls_without_a_token() {
    let mut control = control().await;
    let first = control
        .enroll("bookbuyer/bookbuyer", &["bookbuyer/bookbuyer"])
        .await;
    let second = renew(&control.addr(), &first).await.unwrap();
    assert_eq!(second.spiffe_id(), first.spiffe_id());
    assert_ne!(second.chain_der()[0], first.chain_der()[0]);
    let peer = peer_identity(&second.chain_der()[0].clone().into()).unwrap();
    assert_eq!(peer.serves, vec![ServiceRef::new("bookbuyer", "bookbuyer")]);
    control.shutdown().await;
}

/// A Watch client of `control` over TLS trusting `ours`' bundle, presenting `identity` if any.
fn watch_client(
    control: &LocalControl,
    ours: &smi_client::control::Credentials,
    identity: Option<tonic::transport::Identity>,
) -> ControlClient<tonic::transport::Channel> {
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ours.bundle_pem()))
        .domain_name("localhost");
    if let Some(identity) = identity {
        tls = tls.identity(identity);
    }
    let url = format!("https://{}", control.running().api_addr);
    let channel = tonic::transport::Endpoint::from_shared(url)
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_lazy();
    ControlClient::new(channel)
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_at_the_handshake() {
    let mut control = control().await;
    let mut other = self::control().await;
    let theirs = other.enroll("bookbuyer/bookbuyer", &[]).await;
    // Trusting our CA but presenting the other CA's certificate.
    let ours = control.enroll("bookbuyer/bookbuyer", &[]).await;
    let identity = tonic::transport::Identity::from_pem(theirs.chain_pem(), theirs.key_pem());
    let result = watch_client(&control, &ours, Some(identity))
        .watch(v1::WatchRequest::default())
        .await;
    assert!(
        result.is_err(),
        "a foreign certificate must not get a stream"
    );
    // And without any certificate, Watch is refused as unauthenticated.
    let status = watch_client(&control, &ours, None)
        .watch(v1::WatchRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    control.shutdown().await;
    other.shutdown().await;
}

#[tokio::test]
async fn a_restart_keeps_the_ca_and_outstanding_tokens_valid() {
    let mut control = control().await;
    let token = control.token("bookbuyer/bookbuyer", &[]);
    let bundle = control.running().bundle_pem.clone();
    let creds = control.enroll("bookbuyer/bookbuyer", &[]).await;
    control.shutdown().await;

    control.start_again().await;
    assert_eq!(control.running().bundle_pem, bundle);
    let addr = control.addr();
    let again = enroll(&addr, &token).await.unwrap();
    assert_eq!(again.bundle_der(), creds.bundle_der());
    // The certificate from before the restart still authenticates.
    let mut stream = watch::open(&control, &creds, v1::WatchRequest::default()).await;
    next_update(&mut stream).await;
    control.shutdown().await;
}
