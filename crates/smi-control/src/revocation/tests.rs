use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Barrier;
use std::time::SystemTime;

use super::*;
use crate::ca::{CaError, unix_now};
use crate::enroll::TokenUse;

fn state() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    (dir, state)
}

fn grant(identity: &str, token: Option<(&str, u32)>) -> Grant {
    Grant {
        identity: identity.parse().unwrap(),
        serves: Vec::new(),
        via: "test".into(),
        first_enrolled: SystemTime::now(),
        token: token.map(|(jti, uses)| TokenUse {
            jti: jti.into(),
            uses,
            expires_unix: unix_now() + 600,
        }),
        workload: None,
        names_proven: false,
    }
}

fn revoke(state: &Path, identity: &str, reason: Option<&str>) {
    let mut list = DenyList::load(state).unwrap();
    list.revoke_identity(
        &identity.parse().unwrap(),
        reason.map(str::to_owned),
        unix_now(),
    );
    list.save(state).unwrap();
}

// === the file ===

#[test]
fn the_deny_list_round_trips_with_mode_0600_and_keeps_the_first_time() {
    let (_dir, state) = state();
    assert_eq!(DenyList::load(&state).unwrap(), DenyList::default());
    let mut list = DenyList::default();
    assert!(list.revoke_identity(&"shop/web".parse().unwrap(), None, 100));
    assert!(!list.revoke_identity(&"shop/web".parse().unwrap(), Some("leaked".into()), 200));
    assert!(list.revoke_token("00aa", None, 300));
    list.save(&state).unwrap();
    let mode = std::fs::metadata(DenyList::path(&state))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let read = DenyList::load(&state).unwrap();
    assert_eq!(read, list);
    assert_eq!(read.identities[0].revoked_at_unix, 100);
    assert_eq!(read.identities[0].reason.as_deref(), Some("leaked"));
}

#[test]
fn a_deny_list_that_is_not_exactly_ours_is_an_error_naming_the_entry() {
    let (_dir, state) = state();
    std::fs::create_dir_all(&state).unwrap();
    let path = DenyList::path(&state);
    let write = |text: &str| {
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    let error = |text: &str| {
        write(text);
        DenyList::load(&state).unwrap_err().to_string()
    };
    // A misspelt key would revoke nothing: refused.
    assert!(error(r#"{"identites": []}"#).contains("unknown field"));
    let e = error(r#"{"identities": [{"identity": "Shop/web", "revoked_at_unix": 1}]}"#);
    assert!(e.contains("identities[0].identity"), "{e}");
    let e = error(r#"{"tokens": [{"jti": "x y", "revoked_at_unix": 1}]}"#);
    assert!(e.contains("tokens[0].jti"), "{e}");
    assert!(error("not json").contains(&path.display().to_string()));
    // Readable by others, or a link: refused like every state file.
    write(r#"{"identities": []}"#);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(
        DenyList::load(&state)
            .unwrap_err()
            .to_string()
            .contains("chmod 600")
    );
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", &path).unwrap();
    assert!(
        DenyList::load(&state)
            .unwrap_err()
            .to_string()
            .contains("symbolic link")
    );
}

// === the control's view ===

#[test]
fn a_revoked_identity_or_token_is_refused_with_its_reason_and_published() {
    let (_dir, state) = state();
    let hub = Hub::new(false);
    let revocations = Revocations::open(&state, "cluster.local", hub.clone()).unwrap();
    assert_eq!(revocations.admit(&grant("shop/web", None)), Ok(()));
    assert!(hub.latest().revoked.is_empty());

    revoke(&state, "shop/web", Some("key leaked"));
    let refused = revocations.admit(&grant("shop/web", None)).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "identity shop/web is revoked (\"key leaked\"): it gets no certificate"
    );
    let revoked: Vec<String> = hub
        .latest()
        .revoked
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(revoked, ["spiffe://cluster.local/ns/shop/sa/web"]);
    // Others are not concerned.
    assert_eq!(revocations.admit(&grant("shop/buyer", None)), Ok(()));

    let mut list = DenyList::load(&state).unwrap();
    list.revoke_token("00bb", None, unix_now());
    list.save(&state).unwrap();
    let version = hub.latest().version;
    assert!(matches!(
        revocations.admit(&grant("shop/buyer", Some(("00bb", 5)))),
        Err(Refusal::TokenRevoked { .. })
    ));
    // A token changes no workload's view: nothing new is published for it.
    assert_eq!(hub.latest().version, version);
}

#[test]
fn a_broken_deny_list_keeps_the_last_good_one_in_force_and_stops_a_start() {
    let (_dir, state) = state();
    revoke(&state, "shop/web", None);
    let hub = Hub::new(false);
    let revocations = Revocations::open(&state, "cluster.local", hub.clone()).unwrap();
    let path = DenyList::path(&state);
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, "{").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(revocations.admit(&grant("shop/web", None)).is_err());
    assert_eq!(hub.latest().revoked.len(), 1);
    assert!(Revocations::open(&state, "cluster.local", Hub::new(false)).is_err());
}

// === token uses ===

fn issue(n: &std::sync::atomic::AtomicU32) -> impl FnOnce() -> Result<u32, CaError> + '_ {
    move || Ok(n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1)
}

#[test]
fn a_single_use_token_buys_one_certificate_even_across_a_restart() {
    let (_dir, state) = state();
    let issued = std::sync::atomic::AtomicU32::new(0);
    let revocations = Revocations::open(&state, "cluster.local", Hub::new(false)).unwrap();
    let once = grant("shop/web", Some(("0001", 1)));
    assert_eq!(revocations.issue(&once, issue(&issued)).unwrap(), 1);
    let refused = revocations.issue(&once, issue(&issued)).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "join token 0001 was already used 1 time(s), all it allows: create a new one with `smictl token create`"
    );
    let restarted = Revocations::open(&state, "cluster.local", Hub::new(false)).unwrap();
    assert!(restarted.issue(&once, issue(&issued)).is_err());
    assert_eq!(restarted.token_uses("0001").unwrap(), 1);
    let dir = std::fs::metadata(state.join(USES_DIR))
        .unwrap()
        .permissions()
        .mode();
    let file = std::fs::metadata(state.join(USES_DIR).join("0001.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!((dir & 0o777, file & 0o777), (0o700, 0o600));
    // Renewals (no token) are not counted.
    assert!(
        restarted
            .issue(&grant("shop/web", None), issue(&issued))
            .is_ok()
    );
    assert_eq!(issued.into_inner(), 2);
}

#[test]
fn a_use_counts_only_when_a_certificate_is_issued() {
    let (_dir, state) = state();
    let revocations = Revocations::open(&state, "cluster.local", Hub::new(false)).unwrap();
    let twice = grant("shop/web", Some(("0002", 2)));
    let failed = revocations.issue(&twice, || -> Result<(), CaError> {
        Err(CaError::BadCsr("test".into()))
    });
    assert!(matches!(failed, Err(IssueError::Ca(_))));
    assert_eq!(revocations.token_uses("0002").unwrap(), 0);
    let issued = std::sync::atomic::AtomicU32::new(0);
    assert!(revocations.issue(&twice, issue(&issued)).is_ok());
    assert!(revocations.issue(&twice, issue(&issued)).is_ok());
    assert!(matches!(
        revocations.issue(&twice, issue(&issued)),
        Err(IssueError::Refused(Refusal::TokenUsedUp { used: 2, .. }))
    ));
}

#[test]
fn racing_enrollments_with_one_single_use_token_get_one_certificate() {
    let (_dir, state) = state();
    let revocations = Revocations::open(&state, "cluster.local", Hub::new(false)).unwrap();
    let once = grant("shop/web", Some(("0003", 1)));
    let issued = std::sync::atomic::AtomicU32::new(0);
    let start = Barrier::new(8);
    let won = std::thread::scope(|s| {
        let tries: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    revocations.issue(&once, issue(&issued)).is_ok()
                })
            })
            .collect();
        tries
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|won| *won)
            .count()
    });
    assert_eq!(won, 1);
    assert_eq!(issued.into_inner(), 1);
}

#[test]
fn the_counts_of_expired_tokens_are_forgotten() {
    let (_dir, state) = state();
    // Entries of one expired and one live token, as an earlier run left them.
    let dir = state.join(USES_DIR);
    std::fs::create_dir_all(&dir).unwrap();
    let live = unix_now() + 600;
    for (jti, expires) in [("0004", 1), ("0005", live)] {
        let path = dir.join(format!("{jti}.json"));
        std::fs::write(
            &path,
            format!(r#"{{"used": 1, "expires_unix": {expires}}}"#),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let revocations = Revocations::open(&state, "cluster.local", Hub::new(false)).unwrap();
    assert_eq!(revocations.tokens_counted().unwrap(), 2);
    assert_eq!(revocations.token_uses("0004").unwrap(), 0);
    let issued = std::sync::atomic::AtomicU32::new(0);
    revocations
        .issue(&grant("shop/web", Some(("0006", 1))), issue(&issued))
        .unwrap();
    // 0004 is gone, 0005 and 0006 are counted.
    assert_eq!(revocations.tokens_counted().unwrap(), 2);
    assert!(!dir.join("0004.json").exists());
    assert_eq!(revocations.token_uses("0005").unwrap(), 1);
    assert_eq!(revocations.token_uses("0006").unwrap(), 1);
}
