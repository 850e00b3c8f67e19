use std::sync::Arc;
use std::time::Duration;

use smi_core::ServiceAccount;
use tokio::sync::mpsc;

use super::*;
use crate::ca::unix_now;

fn store(dir: &Path) -> Arc<dyn StateStore> {
    Arc::new(StateDir::new(dir.join("state")))
}

#[test]
fn the_ca_and_token_key_are_made_once_and_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let first = store(dir.path());
    let bundle = first.authority("cluster.local").unwrap().bundle().to_vec();
    let key = first.token_key().unwrap();
    let again = store(dir.path());
    assert_eq!(again.authority("cluster.local").unwrap().bundle(), bundle);
    assert_eq!(again.token_key().unwrap(), key);
    // The layout `smictl` and earlier controls know.
    assert!(dir.path().join("state/ca.json").is_file());
    assert!(dir.path().join("state/token.key").is_file());
}

#[test]
fn the_deny_list_revision_changes_with_each_save() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let store = store(dir.path());
    assert_eq!(store.deny_list_revision(), None);
    let mut list = DenyList::default();
    list.revoke_identity(&ServiceAccount::new("shop", "web"), None, 1);
    list.save(&state).unwrap();
    let first = store.deny_list_revision();
    assert!(first.is_some());
    assert_eq!(store.deny_list_revision(), first);
    assert_eq!(store.deny_list().unwrap(), list);
    list.revoke_identity(&ServiceAccount::new("shop", "db"), None, 2);
    list.save(&state).unwrap();
    assert_ne!(store.deny_list_revision(), first);
}

#[test]
fn the_ledger_records_uses_in_the_token_uses_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let token = TokenUse {
        jti: "00aa".into(),
        uses: 2,
        expires_unix: unix_now() + 600,
    };
    assert_eq!(store.token_uses("00aa").unwrap(), None);
    store.record_token_use(&token, 1, None).unwrap();
    assert_eq!(
        store.token_uses("00aa").unwrap(),
        Some(TokenUses {
            used: 1,
            expires_unix: token.expires_unix,
            revision: None,
        })
    );
    assert!(dir.path().join("state/token-uses/00aa.json").is_file());
    assert_eq!(store.tokens_counted().unwrap(), 1);
    assert!(
        store.token_uses("../ca").is_err(),
        "an id cannot name another file"
    );
}

#[test]
fn versions_are_reserved_above_every_earlier_reservation() {
    let dir = tempfile::tempdir().unwrap();
    let first = store(dir.path()).reserve_versions(100).unwrap();
    assert_eq!(first.start, 1);
    let restarted = store(dir.path()).reserve_versions(100).unwrap();
    assert!(restarted.start >= first.end);
}

#[tokio::test]
async fn its_own_writes_do_not_signal_a_change_and_an_operators_do() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let store = store(dir.path());
    store.authority("cluster.local").unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _watching = store
        .watch(Arc::new(move || {
            let _ = tx.send(());
        }))
        .unwrap();
    store.reserve_versions(10).unwrap();
    let token = TokenUse {
        jti: "00bb".into(),
        uses: 1,
        expires_unix: unix_now() + 600,
    };
    store.record_token_use(&token, 1, None).unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await;
    assert!(quiet.is_err(), "the store's own writes were signalled");
    // Then an operator revokes someone: that is signalled.
    let mut list = DenyList::default();
    list.revoke_identity(&ServiceAccount::new("shop", "web"), None, 1);
    list.save(&state).unwrap();
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
}
