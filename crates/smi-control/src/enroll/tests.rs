use std::time::{Duration, SystemTime};

use rustls::pki_types::CertificateDer;
use smi_core::token;
use smi_core::{ServiceAccount, ServiceRef};

use super::*;

fn tokens(key: &[u8]) -> JoinTokens {
    JoinTokens::new(key, "cluster.local")
}

#[test]
fn a_token_grants_exactly_its_identity_and_services() {
    let t = tokens(b"k1");
    let who = ServiceAccount::new("shop", "web");
    let serves = vec![ServiceRef::new("shop", "web")];
    let token = t.create(&who, &serves, Duration::from_secs(60), &[]);
    let grant = t.verify(&token).unwrap();
    assert_eq!(grant.identity, who);
    assert_eq!(grant.serves, serves);
}

#[test]
fn a_token_from_another_control_is_refused() {
    let token = tokens(b"k1").create(
        &ServiceAccount::new("a", "b"),
        &[],
        Duration::from_secs(60),
        &[],
    );
    assert!(matches!(
        tokens(b"k2").verify(&token),
        Err(Refusal::ForeignControl { .. })
    ));
}

#[test]
fn an_altered_token_is_refused() {
    let t = tokens(b"k1");
    let token = t.create(
        &ServiceAccount::new("a", "b"),
        &[],
        Duration::from_secs(60),
        &[],
    );
    // Re-sign the claims for another identity without the key: keep the old MAC.
    let parsed = token::parse(&token).unwrap();
    let mut claims = parsed.claims.clone();
    claims.sub = "kube-system/admin".into();
    let forged = token::assemble(&claims.signing_input(), &parsed.mac);
    assert_eq!(t.verify(&forged), Err(Refusal::BadSignature));
}

#[test]
fn an_expired_token_is_refused() {
    let t = tokens(b"k1");
    let token = t.create(&ServiceAccount::new("a", "b"), &[], Duration::ZERO, &[]);
    assert!(matches!(t.verify(&token), Err(Refusal::Expired(_))));
}

fn chain() -> Authenticators {
    Authenticators::default()
        .with(tokens(b"k"))
        .with(CertificateRenewal {
            trust_domain: "cluster.local".into(),
            max_chain_lifetime: Duration::from_secs(3600),
        })
}

#[tokio::test]
async fn no_credential_is_refused() {
    assert_eq!(
        chain().authenticate(&Credential::default()).await,
        Err(Refusal::NoCredential)
    );
}

#[tokio::test]
async fn a_token_of_another_kind_is_claimed_by_no_one_and_refused_naming_what_is_expected() {
    // A Kubernetes ServiceAccount token (a JWT): not a join token, so JoinTokens leaves it.
    let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
    assert!(!tokens(b"k").recognizes(&Credential {
        token: Some(jwt),
        peer_certificates: None,
    }));
    let leaf = certificate(Duration::ZERO);
    let chain_der = [leaf];
    // Not even with a certificate: a call that sends a token is about the token.
    for certificates in [None, Some(&chain_der[..])] {
        let refused = chain()
            .authenticate(&Credential {
                token: Some(jwt),
                peer_certificates: certificates,
            })
            .await
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the credential is not one this control accepts: expected a join token (smi1.<claims>.<mac>), or a workload certificate presented over mTLS with no token (renewal)"
        );
    }
}

#[tokio::test]
async fn the_chain_gives_a_join_token_to_join_tokens_and_a_bare_certificate_to_renewal() {
    let t = tokens(b"k");
    let who = ServiceAccount::new("shop", "web");
    let token = t.create(&who, &[], Duration::from_secs(60), &[]);
    let by_token = chain()
        .authenticate(&Credential {
            token: Some(&token),
            peer_certificates: None,
        })
        .await
        .unwrap();
    assert!(by_token.via.starts_with("join token "), "{}", by_token.via);
    // A malformed join token is still a join token: refused by JoinTokens, with its reason.
    let malformed = chain()
        .authenticate(&Credential {
            token: Some("smi1.not-base64!.x"),
            peer_certificates: None,
        })
        .await;
    assert!(
        matches!(malformed, Err(Refusal::Malformed(_))),
        "{malformed:?}"
    );
    let chain_der = [certificate(Duration::ZERO)];
    let by_certificate = chain()
        .authenticate(&Credential {
            token: None,
            peer_certificates: Some(&chain_der),
        })
        .await
        .unwrap();
    assert_eq!(
        (by_certificate.via.as_str(), by_certificate.identity),
        ("certificate", ServiceAccount::new("a", "b"))
    );
}

#[test]
fn a_token_carries_its_id_and_use_count_into_the_grant() {
    let t = tokens(b"k1");
    let made = t.create_with_uses(
        &ServiceAccount::new("a", "b"),
        &[],
        Duration::from_secs(60),
        &[],
        3,
    );
    let grant = t.verify(&made.token).unwrap();
    let spent = grant.token.unwrap();
    assert_eq!(spent.jti, made.jti);
    assert_eq!(spent.uses, 3);
    let single = t.verify(&t.create(
        &ServiceAccount::new("a", "b"),
        &[],
        Duration::from_secs(60),
        &[],
    ));
    assert_eq!(single.unwrap().token.unwrap().uses, 1);
}

/// A certificate of `ca` for a/b whose chain was first enrolled `age` ago.
fn certificate(age: Duration) -> CertificateDer<'static> {
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::ca::CaStore::new(dir.path().join("state"))
        .open_or_init("cluster.local")
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .unwrap();
    ca.issue_workload_since(
        csr.der(),
        &ServiceAccount::new("a", "b"),
        &[],
        Duration::from_secs(60),
        SystemTime::now() - age,
    )
    .unwrap()
    .chain
    .remove(0)
}

fn renew(max: Duration, leaf: &CertificateDer<'static>) -> Result<Grant, Refusal> {
    let renewal = CertificateRenewal {
        trust_domain: "cluster.local".into(),
        max_chain_lifetime: max,
    };
    renewal.renew(leaf)
}

#[test]
fn a_renewal_carries_the_chains_first_enrollment_on() {
    let leaf = certificate(Duration::from_secs(3600));
    let grant = renew(Duration::from_secs(7200), &leaf).unwrap();
    let age = SystemTime::now()
        .duration_since(grant.first_enrolled)
        .unwrap();
    assert!(age >= Duration::from_secs(3600) && age < Duration::from_secs(3700));
    assert_eq!(grant.token, None);
    assert_eq!(grant.workload, None, "a certificate without names");
}

#[test]
fn a_renewal_carries_the_certificates_workload_names_on() {
    use smi_core::telemetry::Workload;

    let dir = tempfile::tempdir().unwrap();
    let ca = crate::ca::CaStore::new(dir.path().join("state"))
        .open_or_init("cluster.local")
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .unwrap();
    let names = Workload::new("a", "web", "web-0");
    let leaf = ca
        .issue_workload_named(
            csr.der(),
            &ServiceAccount::new("a", "b"),
            &[],
            Duration::from_secs(60),
            SystemTime::now(),
            Some(&names),
        )
        .unwrap()
        .chain
        .remove(0);
    let grant = renew(Duration::from_secs(7200), &leaf).unwrap();
    assert_eq!(grant.workload, Some(names));
}

#[test]
fn a_chain_past_its_maximum_lifetime_cannot_renew() {
    let leaf = certificate(Duration::from_secs(7300));
    let refused = renew(Duration::from_secs(7200), &leaf).unwrap_err();
    assert!(matches!(
        refused,
        Refusal::ChainTooOld { max_secs: 7200, .. }
    ));
    assert!(
        refused
            .to_string()
            .contains("re-enroll with a new join token")
    );
}
