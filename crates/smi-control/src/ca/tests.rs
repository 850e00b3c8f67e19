use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use rcgen::{CertificateParams, KeyPair, SanType};
use smi_core::{ServiceAccount, ServiceRef};

use super::*;
use smi_tls::peer_identity;

fn csr(sans: Vec<SanType>) -> (KeyPair, Vec<u8>) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans;
    let csr = params.serialize_request(&key).unwrap();
    (key, csr.der().to_vec())
}

fn authority(dir: &std::path::Path) -> Authority {
    CaStore::new(dir).open_or_init("cluster.local").unwrap()
}

#[test]
fn issues_the_authenticated_identity_and_served_services() {
    let dir = tempfile::tempdir().unwrap();
    let ca = authority(dir.path());
    let (_key, der) = csr(vec![]);
    let who = ServiceAccount::new("bookstore", "bookstore");
    let serves = [ServiceRef::new("bookstore", "bookstore-v1")];
    let issued = ca
        .issue_workload(&der, &who, &serves, Duration::from_secs(3600))
        .unwrap();
    let peer = peer_identity(&issued.chain[0]).unwrap();
    assert_eq!(
        peer.spiffe_id.to_string(),
        "spiffe://cluster.local/ns/bookstore/sa/bookstore"
    );
    assert_eq!(peer.serves, serves.to_vec());
    let left = peer
        .not_after
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(
        left <= Duration::from_secs(3600) && left > Duration::from_secs(3500),
        "{left:?}"
    );
}

#[test]
fn refuses_a_csr_that_asks_for_another_identity() {
    let dir = tempfile::tempdir().unwrap();
    let ca = authority(dir.path());
    let uri = "spiffe://cluster.local/ns/bookstore/sa/admin";
    let (_key, der) = csr(vec![SanType::URI(uri.try_into().unwrap())]);
    let who = ServiceAccount::new("bookbuyer", "bookbuyer");
    let err = ca
        .issue_workload(&der, &who, &[], Duration::from_secs(60))
        .unwrap_err();
    assert!(matches!(err, CaError::ForeignSan { .. }), "{err}");
    assert!(err.to_string().contains(uri));
}

#[test]
fn refuses_a_csr_whose_signature_does_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let ca = authority(dir.path());
    let (_key, mut der) = csr(vec![]);
    let last = der.len() - 1;
    der[last] ^= 0x55;
    let who = ServiceAccount::new("a", "b");
    assert!(matches!(
        ca.issue_workload(&der, &who, &[], Duration::from_secs(60)),
        Err(CaError::BadCsr(_))
    ));
    assert!(matches!(
        ca.issue_workload(b"garbage", &who, &[], Duration::from_secs(60)),
        Err(CaError::BadCsr(_))
    ));
}

#[test]
fn state_files_with_secrets_are_private_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = authority(dir.path()).bundle().to_vec();
    let store = CaStore::new(dir.path());
    let key = store.token_key().unwrap();
    for secret in ["ca.json", "token.key"] {
        let mode = std::fs::metadata(dir.path().join(secret))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{secret}");
    }
    // A second start reads the same root and token key.
    assert_eq!(authority(dir.path()).bundle(), first.as_slice());
    assert_eq!(store.token_key().unwrap(), key);
}

#[test]
fn rotation_signs_with_the_new_root_and_trusts_both_during_the_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let old = authority(dir.path()).bundle().to_vec();
    let store = CaStore::new(dir.path());
    store
        .rotate("cluster.local", Duration::from_secs(3600))
        .unwrap();
    let ca = store.load("cluster.local").unwrap();
    assert_eq!(ca.bundle().len(), 2);
    assert_eq!(ca.bundle()[1], old[0]);
    assert!(store.next_retirement().is_some());
    // After the overlap the old root is gone from the bundle.
    store.rotate("cluster.local", Duration::ZERO).unwrap();
    let ca = store.load("cluster.local").unwrap();
    assert_eq!(ca.bundle().len(), 1);
    assert!(!ca.bundle().contains(&old[0]));
}

#[test]
fn the_workloads_names_are_written_for_peers_to_read_and_checked() {
    use smi_core::telemetry::Workload;

    let dir = tempfile::tempdir().unwrap();
    let ca = authority(dir.path());
    let (_key, der) = csr(vec![]);
    let who = ServiceAccount::new("bookstore", "bookstore");
    let issue = |names: Option<&Workload>| {
        ca.issue_workload_named(
            &der,
            &who,
            &[],
            Duration::from_secs(60),
            std::time::SystemTime::now(),
            names,
        )
    };
    let names = Workload::new("bookstore", "bookstore-v1", "bookstore-v1-5d8f7c9b4-x2x7q");
    let issued = issue(Some(&names)).unwrap();
    let peer = peer_identity(&issued.chain[0]).unwrap();
    assert_eq!(peer.workload, Some(names));
    // The first-enrollment time is still there beside it.
    assert!(first_enrolled(&issued.chain[0]).is_ok());
    let unnamed = issue(None).unwrap();
    assert_eq!(peer_identity(&unnamed.chain[0]).unwrap().workload, None);

    let foreign = Workload::new("payments", "bookstore-v1", "p");
    assert!(matches!(
        issue(Some(&foreign)),
        Err(CaError::ForeignNamespace { .. })
    ));
    let invalid = Workload::new("bookstore", "Bookstore_V1", "p");
    let err = issue(Some(&invalid)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("names: workload name \"Bookstore_V1\""),
        "{err}"
    );
}
