//! The control's state in a Kubernetes Secret (`smi_control::kubernetes::SecretStore`), against
//! the fake API server (`smi_test_util::kube_api`, real HTTP on 127.0.0.1, run on a runtime of
//! its own so that the blocking store can be called from anywhere, a current-thread control's
//! handlers included): the first start makes the Secret in cert-manager's layout, replicas
//! share its CA and token key, a token's last use is spent once, rotations and revocations
//! reach the other replica's watch, a hand-broken key is an error and left alone, versions
//! never overlap, and a control on the store enrolls a workload. Every wait is on an event,
//! bounded by a timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use smi_client::control::enroll_with_ca;
use smi_control::enroll::{JoinTokens, TokenUse};
use smi_control::kubernetes::SecretStore;
use smi_control::serve::{ControlBuilder, ServeConfig};
use smi_control::traits::{StateStore, StoreError};
use smi_core::{ServiceAccount, ServiceRef};
use smi_test_util::kube_api::FakeApiServer;
use smi_test_util::{TRUST_DOMAIN, refused};

const NS: &str = "smi-system";
const NAME: &str = "smi-control-state";
const STORE: &str = "kubernetes:secret/smi-system/smi-control-state";
const WAIT: Duration = Duration::from_secs(10);

/// The fake API server with the namespace `smi-system`, on a runtime of its own (so that it
/// serves while a test's thread blocks in a store call, whatever runtime that thread is in).
struct Cluster {
    fake: FakeApiServer,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Cluster {
    /// Without waiting: a test may end inside a runtime, where a blocking shutdown panics.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Cluster {
    /// Callable from a test's runtime too: the server starts on its own.
    fn start() -> Cluster {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        runtime.spawn(async move { tx.send(FakeApiServer::start().await) });
        let fake = rx.recv_timeout(WAIT).expect("the fake API server started");
        fake.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = fake.kubeconfig(dir.path());
        Cluster {
            fake,
            kubeconfig,
            dir,
            runtime: Some(runtime),
        }
    }

    /// [`Cluster::start`], the Secret made by a first control (so that replicas connected
    /// after see it in their first list, not as a change).
    fn started() -> Cluster {
        let cluster = Cluster::start();
        cluster.store().authority(TRUST_DOMAIN).unwrap();
        cluster
    }

    /// A replica's store (blocking: it connects and lists the Secret).
    fn store(&self) -> SecretStore {
        SecretStore::connect(Some(&self.kubeconfig), NS, NAME).unwrap()
    }

    fn secret(&self) -> Value {
        self.fake
            .get("v1", "secrets", Some(NS), NAME)
            .expect("the state Secret")
    }

    /// The key `key` of the Secret, decoded.
    fn data(&self, key: &str) -> Vec<u8> {
        let secret = self.secret();
        let text = secret["data"][key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} in {secret}"));
        base64(text)
    }

    /// Writes `keys` into the Secret as a person with kubectl would (`stringData`).
    fn edit(&self, keys: Value) {
        let mut secret = self.secret();
        secret["stringData"] = keys;
        self.fake.apply(secret);
    }

    fn resource_version(&self) -> String {
        self.secret()["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// Standard base64 with padding (the Secret's `data`).
fn base64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut bits, mut count, mut out) = (0u32, 0u32, Vec::new());
    for c in text.bytes().filter(|&c| c != b'=') {
        let value = ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    out
}

fn certificates(pem: &[u8]) -> Vec<Vec<u8>> {
    CertificateDer::pem_slice_iter(pem)
        .map(|c| c.unwrap().to_vec())
        .collect()
}

fn bundle(store: &SecretStore) -> Vec<Vec<u8>> {
    let authority = store.authority(TRUST_DOMAIN).unwrap();
    authority.bundle().iter().map(|c| c.to_vec()).collect()
}

/// Calls on `rx` (a watch callback's), or panics after [`WAIT`].
fn called(rx: &mpsc::Receiver<()>, what: &str) {
    rx.recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("{what}: no watch callback within {WAIT:?}"));
}

fn watching(store: &SecretStore) -> (smi_control::traits::WatchGuard, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel();
    let guard = store
        .watch(Arc::new(move || {
            let _ = tx.send(());
        }))
        .unwrap();
    (guard, rx)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_first_start_makes_the_secret_with_the_ca_in_cert_managers_layout_and_the_token_key() {
    let cluster = Cluster::start();
    let store = cluster.store();
    assert_eq!(store.name(), STORE);
    assert!(cluster.fake.get("v1", "secrets", Some(NS), NAME).is_none());

    let roots = bundle(&store);
    let key = store.token_key().unwrap();
    let secret = cluster.secret();
    assert_eq!(secret["type"], "kubernetes.io/tls", "{secret}");
    assert_eq!(roots.len(), 1);
    assert_eq!(certificates(&cluster.data("tls.crt")), roots);
    assert_eq!(certificates(&cluster.data("ca.crt")), roots);
    let tls_key = String::from_utf8(cluster.data("tls.key")).unwrap();
    assert!(
        tls_key.starts_with("-----BEGIN PRIVATE KEY-----"),
        "{tls_key}"
    );
    let token_key = String::from_utf8(cluster.data("token.key")).unwrap();
    assert_eq!(base64(&token_key), key);
    assert_eq!(key.len(), 32);
    // Started again (a restarted pod): the same CA and key, nothing new written.
    let version = cluster.resource_version();
    let again = cluster.store();
    assert_eq!(bundle(&again), roots);
    assert_eq!(again.token_key().unwrap(), key);
    assert_eq!(cluster.resource_version(), version);
}

#[test]
fn replicas_share_one_ca_and_token_key_even_when_they_start_at_once() {
    let cluster = Cluster::start();
    let stores: Vec<SecretStore> = (0..3).map(|_| cluster.store()).collect();
    let barrier = Barrier::new(stores.len());
    let started: Vec<(Vec<Vec<u8>>, Vec<u8>)> = std::thread::scope(|s| {
        let handles: Vec<_> = stores
            .iter()
            .map(|store| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    (bundle(store), store.token_key().unwrap())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let stored = certificates(&cluster.data("tls.crt"));
    for (roots, key) in &started {
        assert_eq!(roots, &stored, "every replica took the CA in the Secret");
        assert_eq!(key, &started[0].1);
    }
    let late = cluster.store();
    assert_eq!(bundle(&late), stored);
    assert_eq!(late.token_key().unwrap(), started[0].1);
}

/// What an enrollment does with the ledger: read the count, then record one more (both
/// replicas read before either writes).
fn spend(replica: &SecretStore, token: &TokenUse, both_read: &Barrier) -> Result<(), StoreError> {
    let read = replica.token_uses(&token.jti).unwrap();
    assert_eq!(read, None, "unused");
    both_read.wait();
    replica.record_token_use(token, 1, read.as_ref())
}

#[test]
fn two_replicas_spending_a_tokens_last_use_at_once_record_it_once() {
    let cluster = Cluster::start();
    let (a, b) = (cluster.store(), cluster.store());
    a.authority(TRUST_DOMAIN).unwrap();
    for round in 0..5 {
        let token = TokenUse {
            jti: format!("{round:018x}"),
            uses: 1,
            expires_unix: unix_now() + 600,
        };
        let barrier = Barrier::new(2);
        let results: Vec<Result<(), StoreError>> = std::thread::scope(|s| {
            let one = s.spawn(|| spend(&a, &token, &barrier));
            let two = s.spawn(|| spend(&b, &token, &barrier));
            vec![one.join().unwrap(), two.join().unwrap()]
        });
        let won = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "round {round}: {results:?}");
        let lost = results.into_iter().find_map(Result::err).unwrap();
        assert!(matches!(lost, StoreError::Conflict { .. }), "{lost}");
        assert!(
            lost.to_string()
                .starts_with(&format!("{STORE}:token-uses.json: the token was used")),
            "{lost}"
        );
        let uses = b.token_uses(&token.jti).unwrap().expect("recorded");
        assert_eq!((uses.used, uses.expires_unix), (1, token.expires_unix));
    }
    let ledger: Value = serde_json::from_slice(&cluster.data("token-uses.json")).unwrap();
    assert_eq!(ledger.as_object().unwrap().len(), 5, "{ledger}");
    assert_eq!(a.tokens_counted().unwrap(), 5);
}

#[test]
fn a_rotation_keeps_the_old_root_in_ca_crt_and_reaches_the_other_replica() {
    let cluster = Cluster::started();
    let (a, b) = (cluster.store(), cluster.store());
    let old = bundle(&a);
    assert_eq!(bundle(&b), old);
    let (_guard, changed) = watching(&b);

    a.rotate(TRUST_DOMAIN, Duration::from_secs(3600)).unwrap();
    called(&changed, "the rotation");
    let new = certificates(&cluster.data("tls.crt"));
    assert_ne!(new, old);
    let trusted = certificates(&cluster.data("ca.crt"));
    assert_eq!(trusted, [new[0].clone(), old[0].clone()]);
    let retiring: Value = serde_json::from_slice(&cluster.data("smi-mesh.retiring.json")).unwrap();
    assert_eq!(retiring.as_object().unwrap().len(), 1, "{retiring}");
    assert_eq!(
        bundle(&b),
        trusted,
        "the other replica signs with the new root"
    );
    assert!(b.next_retirement().is_some());
}

#[test]
fn a_root_replaced_underneath_by_cert_manager_stays_trusted_as_retiring() {
    let cluster = Cluster::start();
    let store = cluster.store();
    let old = bundle(&store);
    let (_guard, changed) = watching(&store);

    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    let root = params.self_signed(&key).unwrap();
    cluster
        .edit(json!({"tls.crt": root.pem(), "tls.key": key.serialize_pem(), "ca.crt": root.pem()}));
    called(&changed, "cert-manager's renewal");

    let roots = bundle(&store);
    assert_eq!(roots, [root.der().to_vec(), old[0].clone()]);
    assert_eq!(
        certificates(&cluster.data("ca.crt")),
        roots,
        "recorded in the Secret"
    );
    let retiring: Value = serde_json::from_slice(&cluster.data("smi-mesh.retiring.json")).unwrap();
    let retire = retiring
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_u64()
        .unwrap();
    let overlap = smi_control::kubernetes::secret_store::DISPLACED_OVERLAP.as_secs();
    assert!(retire.abs_diff(unix_now() + overlap) < 60, "{retiring}");
    assert_eq!(
        String::from_utf8(cluster.data("tls.key")).unwrap(),
        key.serialize_pem(),
        "cert-manager's key is left as written"
    );
    // A replica started now reads the same trust from the Secret alone.
    assert_eq!(bundle(&cluster.store()), roots);
}

#[test]
fn a_deny_list_written_through_one_replica_reaches_the_others_watch_and_deny_list() {
    let cluster = Cluster::started();
    let (a, b) = (cluster.store(), cluster.store());
    let (_guard, changed) = watching(&b);
    assert_eq!(b.deny_list_revision(), None);

    let thief: ServiceAccount = "bookstore/bookthief".parse().unwrap();
    let revoked = a
        .update_deny_list(|list| list.revoke_identity(&thief, Some("stolen".into()), unix_now()))
        .unwrap();
    assert!(revoked);
    called(&changed, "the revocation");
    let list = b.deny_list().unwrap();
    assert_eq!(list.identities.len(), 1);
    assert_eq!(list.identities[0].identity, "bookstore/bookthief");
    let revision = b.deny_list_revision().expect("a deny list");
    assert_eq!(a.deny_list_revision(), Some(revision));

    a.update_deny_list(|list| list.revoke_token("0123456789abcdef01", None, unix_now()))
        .unwrap();
    called(&changed, "the second revocation");
    assert_ne!(b.deny_list_revision(), Some(revision));
    assert_eq!(b.deny_list().unwrap().tokens.len(), 1);
}

#[test]
fn a_secret_edited_by_hand_to_hold_a_broken_key_is_an_error_naming_it_and_left_alone() {
    let cluster = Cluster::start();
    let first = cluster.store();
    first.authority(TRUST_DOMAIN).unwrap();
    let (_guard, changed) = watching(&first);
    cluster.edit(json!({"tls.key": "not a key"}));
    called(&changed, "the hand edit");
    let version = cluster.resource_version();

    let expected = format!("{STORE}:tls.key: no PEM private key");
    let restarted = cluster.store();
    let error = restarted.authority(TRUST_DOMAIN).unwrap_err().to_string();
    assert!(error.starts_with(&expected), "{error}");
    let error = first.authority(TRUST_DOMAIN).unwrap_err().to_string();
    assert!(error.starts_with(&expected), "{error}");
    assert_eq!(cluster.data("tls.key"), b"not a key");
    assert_eq!(cluster.resource_version(), version, "nothing was written");

    cluster.edit(json!({"revoked.json": "{\"identities\": 7}"}));
    called(&changed, "the second hand edit");
    let error = first.deny_list().unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("{STORE}:revoked.json: ")),
        "{error}"
    );
}

#[test]
fn a_deleted_secret_is_an_error_and_no_new_ca_is_made() {
    let cluster = Cluster::start();
    let store = cluster.store();
    store.authority(TRUST_DOMAIN).unwrap();
    let (_guard, changed) = watching(&store);
    cluster
        .fake
        .delete("v1", "secrets", Some(NS), NAME)
        .unwrap();
    called(&changed, "the deletion");
    let error = store.authority(TRUST_DOMAIN).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("{STORE}: the Secret is gone")),
        "{error}"
    );
    assert!(store.token_key().is_err());
    assert!(cluster.fake.get("v1", "secrets", Some(NS), NAME).is_none());
}

#[test]
fn versions_reserved_by_two_replicas_never_overlap() {
    let cluster = Cluster::start();
    let stores = [cluster.store(), cluster.store()];
    stores[0].authority(TRUST_DOMAIN).unwrap();
    // Versions come from the Secret's revision (the same on every replica that has seen it);
    // the reserved blocks below are for a Secret whose revision is not a number.
    let shared = stores[0]
        .shared_version()
        .expect("a version from the Secret's revision");
    assert_eq!(shared % (1 << smi_core::proto::VERSION_REVISION_SHIFT), 0);
    let mut ranges: Vec<std::ops::Range<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = stores
            .iter()
            .map(|store| {
                s.spawn(move || {
                    (0..10)
                        .map(|_| store.reserve_versions(100).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    ranges.sort_by_key(|r| r.start);
    assert_eq!(ranges.len(), 20);
    assert!(ranges[0].start >= 1, "never 0");
    for pair in ranges.windows(2) {
        assert!(pair[0].end <= pair[1].start, "{ranges:?}");
        assert_eq!(pair[0].end - pair[0].start, 100);
    }
    let mark: Value = serde_json::from_slice(&cluster.data("versions.json")).unwrap();
    assert_eq!(mark["reserved_below"], ranges[19].end);
}

#[tokio::test]
async fn a_control_on_the_secret_enrolls_a_workload_with_a_token_from_its_key_and_ca() {
    let cluster = Cluster::start();
    // What `smictl token create` would do against the same Secret: the CA and key it holds.
    let minting = cluster.store();
    let authority = minting.authority(TRUST_DOMAIN).unwrap();
    let identity: ServiceAccount = "bookstore/bookstore-v1".parse().unwrap();
    let serves: Vec<ServiceRef> = vec!["bookstore/bookstore-v1".parse().unwrap()];
    let token = JoinTokens::new(&minting.token_key().unwrap(), TRUST_DOMAIN).create_with_uses(
        &identity,
        &serves,
        Duration::from_secs(600),
        authority.bundle(),
        1,
    );

    let policy = cluster.dir.path().join("policy");
    std::fs::create_dir_all(&policy).unwrap();
    let state_dir = cluster.dir.path().join("state");
    let loopback = "127.0.0.1:0".parse().unwrap();
    let config = ServeConfig {
        policy_dir: policy,
        state_dir: state_dir.clone(),
        listen: loopback,
        admin: loopback,
        ..ServeConfig::default()
    };
    let running = ControlBuilder::new(config)
        .state_store(cluster.store())
        .start()
        .await
        .unwrap();
    let addr = smi_client::control::ControlAddr::parse(&running.api_addr.to_string()).unwrap();

    let credentials = enroll_with_ca(&addr, &token.token, &running.bundle_pem, TRUST_DOMAIN)
        .await
        .unwrap();
    assert_eq!(
        credentials.spiffe_id().to_string(),
        "spiffe://cluster.local/ns/bookstore/sa/bookstore-v1"
    );
    let again =
        refused(enroll_with_ca(&addr, &token.token, &running.bundle_pem, TRUST_DOMAIN).await);
    assert!(again.contains("was already used 1 time(s)"), "{again}");
    let ledger: Value = serde_json::from_slice(&cluster.data("token-uses.json")).unwrap();
    assert_eq!(ledger[&token.jti]["used"], 1, "{ledger}");
    assert!(!state_dir.exists(), "no state directory was needed");
    running.shutdown().await;
}
