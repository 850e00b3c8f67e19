//! smictl against a control service: `status` over the admin API with its token, and `token
//! create` / `revoke` on a state directory.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;

use std::fs;

use common::{smictl, smictl_command, stdout, write};

/// A control service with an admin token, on 127.0.0.1 port 0, and `smictl status` against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_sends_the_admin_token_and_says_why_it_was_refused() {
    use smi_control::serve::{ServeConfig, ServeError, start};
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy");
    fs::create_dir(&policy).unwrap();
    let token_file = write(dir.path(), "admin.token", "s3cret-admin-token\n");
    let config = |token_mode: u32| {
        fs::set_permissions(&token_file, fs::Permissions::from_mode(token_mode)).unwrap();
        ServeConfig {
            policy_dir: policy.clone(),
            state_dir: dir.path().join("state"),
            listen: "127.0.0.1:0".parse().unwrap(),
            admin: "127.0.0.1:0".parse().unwrap(),
            admin_token_file: Some(token_file.clone()),
            ..ServeConfig::default()
        }
    };
    // A token others can read: the control does not start.
    let err = start(config(0o644)).await.unwrap_err();
    assert!(matches!(err, ServeError::AdminToken(_)), "{err}");
    assert!(err.to_string().contains("chmod 600"), "{err}");

    let control = start(config(0o600)).await.unwrap();
    let admin = control.admin_addr.to_string();
    let status = move |extra: Vec<String>| {
        let admin = admin.clone();
        tokio::task::spawn_blocking(move || {
            let mut args = vec!["status".to_owned(), "--admin".to_owned(), admin];
            args.extend(extra);
            smictl_command()
                .args(&args)
                .env_remove("SMI_ADMIN_TOKEN")
                .output()
                .unwrap()
        })
    };
    let refused = status(vec![]).await.unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(err.contains("401") && err.contains("--token-file"), "{err}");

    let token = token_file.to_str().unwrap().to_owned();
    let served = status(vec!["--token-file".into(), token]).await.unwrap();
    assert_eq!(
        served.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&served.stderr)
    );
    assert!(
        stdout(&served).contains("workloads connected: 0"),
        "{}",
        stdout(&served)
    );
    control.shutdown().await;
}

#[test]
fn token_create_prints_the_tokens_id_which_revoke_takes() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let made = smictl(&[
        "token",
        "create",
        "--state-dir",
        state,
        "--identity",
        "shop/web",
        "--uses",
        "3",
    ]);
    assert_eq!(made.status.code(), Some(0));
    let token = stdout(&made);
    let claims = smi_core::token::parse(token.trim()).unwrap().claims;
    assert_eq!(claims.uses, 3);
    let err = String::from_utf8_lossy(&made.stderr);
    assert!(
        err.contains(&format!(
            "token id {}: enrolls 3 workload(s) as shop/web",
            claims.jti
        )),
        "{err}"
    );
    assert_eq!(
        smictl(&[
            "token",
            "create",
            "--state-dir",
            state,
            "--identity",
            "a/b",
            "--uses",
            "0"
        ])
        .status
        .code(),
        Some(2)
    );

    let revoked = smictl(&["revoke", "--state-dir", state, "--token", &claims.jti]);
    assert_eq!(revoked.status.code(), Some(0));
    let listed = smictl(&["revoke", "--state-dir", state, "--list"]);
    assert_eq!(listed.status.code(), Some(0));
    assert!(stdout(&listed).starts_with(&format!("token     {}  revoked ", claims.jti)));
    // Nothing said to revoke is a usage error.
    assert_eq!(
        smictl(&["revoke", "--state-dir", state]).status.code(),
        Some(2)
    );
}
