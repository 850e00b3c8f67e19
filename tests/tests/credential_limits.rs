//! What a credential is worth, end to end against a real control process on loopback
//! (`smi-test-control`): join tokens buy as many certificates as they allow and a revoked one
//! buys nothing (`smictl revoke`, its own code, writing the state directory as the binary does),
//! the counts survive a restart, a chain of renewals ends at its maximum lifetime, and a
//! certificate of a retired root renews no more.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use smi_client::control::{Credentials, enroll, renew};
use smi_test_util::bookstore::ACCESS;
use smi_test_util::{Control, LiveControl, TokenSpec, mint_token, refused, smictl, status_until};

const WAIT: Duration = Duration::from_secs(20);

/// The control over the bookstore policy, with `env` (`SMI_TEST_*` settings).
async fn start(env: &[(&str, &str)]) -> LiveControl {
    LiveControl::start(&[("access.yaml", ACCESS)], env).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_tokens_buy_what_they_allow_and_a_revoked_one_buys_nothing() {
    let mut setup = start(&[]).await;
    let single = setup.token("bookbuyer/bookbuyer", &[]);
    enroll(&setup.addr(), &single).await.unwrap();
    let again = refused(enroll(&setup.addr(), &single).await);
    assert!(again.contains("was already used 1 time(s)"), "{again}");

    let twice = mint_token(
        &setup.state,
        &"bookbuyer/bookbuyer".parse().unwrap(),
        &[],
        TokenSpec {
            uses: 2,
            ..TokenSpec::default()
        },
    );
    enroll(&setup.addr(), &twice.token).await.unwrap();
    enroll(&setup.addr(), &twice.token).await.unwrap();
    assert!(refused(enroll(&setup.addr(), &twice.token).await).contains("used 2 time(s)"));

    let leaked = setup.token("bookbuyer/bookbuyer", &[]);
    let jti = smi_core::token::parse(&leaked).unwrap().claims.jti;
    setup.revoke(&["--token", &jti, "--reason", "pasted in a chat"]);
    let revoked = refused(enroll(&setup.addr(), &leaked).await);
    assert!(
        revoked.contains(&format!(
            r#"join token {jti} is revoked ("pasted in a chat")"#
        )),
        "{revoked}"
    );

    // The counts are in the state directory: a restarted control still refuses the used token.
    setup.restart().await;
    let after = refused(enroll(&setup.addr(), &single).await);
    assert!(after.contains("already used"), "{after}");
    let fresh = setup.token("bookbuyer/bookbuyer", &[]);
    enroll(&setup.addr(), &fresh).await.unwrap();
    setup.stop(Vec::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_renewals_ends_at_its_maximum_lifetime() {
    let setup = start(&[("SMI_TEST_MAX_CHAIN_LIFETIME_MS", "2000")]).await;
    let enrolled = Instant::now();
    let token = setup.token("bookbuyer/bookbuyer", &[]);
    let first = enroll(&setup.addr(), &token).await.unwrap();
    let renewed = renew(&setup.addr(), &first).await.unwrap();
    let since = |c: &Credentials| {
        smi_control::ca::first_enrolled(&c.chain_der()[0].clone().into()).unwrap()
    };
    // The renewal carries the first enrollment on; it does not start a new chain, and no
    // certificate of the chain outlives its end (the test control's certificates live 600 s).
    assert_eq!(since(&renewed), since(&first));
    let end = since(&first) + Duration::from_secs(2);
    for credentials in [&first, &renewed] {
        assert!(
            credentials.not_after() <= end,
            "{:?}",
            credentials.not_after()
        );
    }
    // The chain's end is a time, not an event: wait for it (with a second of margin). Then no
    // certificate of the chain renews (each has expired with it; the control's own refusal of
    // an old chain is unit-tested in enroll).
    tokio::time::sleep_until((enrolled + Duration::from_secs(3)).into()).await;
    for credentials in [&renewed, &first] {
        assert!(renew(&setup.addr(), credentials).await.is_err());
    }
    let token = setup.token("bookbuyer/bookbuyer", &[]);
    let fresh = enroll(&setup.addr(), &token).await.unwrap();
    renew(&setup.addr(), &fresh).await.unwrap();
    setup.stop(Vec::new()).await;
}

/// Sets every root but the newest in `ca.json` to retire now, as the end of a rotation's
/// overlap does (written as the control writes it: mode 0600, renamed into place).
fn retire_old_roots(state: &Path) {
    let path = state.join("ca.json");
    let mut ca: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for root in ca["roots"].as_array_mut().unwrap().iter_mut().skip(1) {
        root["retire_after_unix"] = now.into();
    }
    let tmp = state.join(".ca.json.test.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&ca).unwrap()).unwrap();
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_of_a_retired_root_renews_no_more() {
    let setup = start(&[]).await;
    let observer = setup
        .mesh("bookbuyer/bookbuyer", &[], &["bookstore/bookstore-v1"])
        .await;
    let token = setup.token("bookstore/bookstore", &[]);
    let old = enroll(&setup.addr(), &token).await.unwrap();

    let state = setup.state.to_str().unwrap();
    assert_eq!(
        smictl(&[
            "smictl",
            "ca",
            "rotate",
            "--state-dir",
            state,
            "--overlap",
            "1h"
        ]),
        ExitCode::SUCCESS
    );
    status_until(&observer, "the two-root bundle", WAIT, |m| {
        m.credentials().bundle_der().len() == 2
    })
    .await;
    let both = observer.credentials().bundle_der().to_vec();
    // During the overlap a certificate of the retiring root renews, into one of the new root:
    // that is how workloads migrate.
    let migrated = renew(
        &setup.addr(),
        &old.clone().with_bundle(both.clone()).unwrap(),
    )
    .await
    .unwrap();

    retire_old_roots(&setup.state);
    status_until(&observer, "the one-root bundle", WAIT, |m| {
        m.credentials().bundle_der().len() == 1
    })
    .await;
    // Trusting both roots on our side, the old certificate is refused by the control's
    // handshake, which trusts only the new root now.
    let error = renew(&setup.addr(), &old.clone().with_bundle(both).unwrap())
        .await
        .unwrap_err();
    eprintln!("a retired root's certificate renewing: {error}");
    // Not Certify's refusal (it never ran): the handshake's.
    let message = error.to_string();
    for code in ["PermissionDenied", "Unauthenticated", "InvalidArgument"] {
        assert!(!message.contains(code), "{message}");
    }
    // The migrated certificate renews.
    renew(&setup.addr(), &migrated).await.unwrap();
    drop(observer);
    setup.stop(Vec::new()).await;
}
