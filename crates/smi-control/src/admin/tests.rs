use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;
use crate::hub::Hub;
use crate::status::Status;
use crate::telemetry::{StoreLimits, SystemClock, TelemetryStore};

const TOKEN: &str = "t0ken-Of-the-admin";

fn app(bound: IpAddr, names: &[&str], token: Option<&str>) -> Router {
    let hub = Hub::new(false);
    let state = AdminState {
        hub,
        status: Status::new(),
        telemetry: Arc::new(TelemetryStore::new(
            Arc::new(SystemClock),
            StoreLimits::from(&crate::quota::Quotas::default()),
        )),
        store: StoreView::default(),
    };
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let access = Access::new(
        AllowedHosts::new(bound, &names),
        token.map(|t| AdminToken::new(t).unwrap()),
    );
    router(state, access)
}

fn loopback() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

/// Status and body of one request; `host` `None` sends none.
async fn get(
    app: &Router,
    uri: &str,
    host: Option<&str>,
    auth: Option<&str>,
) -> (StatusCode, String) {
    let mut request = Request::get(uri);
    if let Some(host) = host {
        request = request.header("host", host);
    }
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn serves_loopback_hosts_and_refuses_a_rebinding_host() {
    let app = app(loopback(), &[], None);
    for host in [
        "127.0.0.1:7080",
        "127.0.0.1",
        "127.5.6.7:80",
        "localhost",
        "LocalHost.:7080",
        "[::1]:7080",
        "[::ffff:127.0.0.1]",
    ] {
        let (status, body) = get(&app, "/debug/policy", Some(host), None).await;
        assert_eq!(status, StatusCode::OK, "{host}: {body}");
    }
    for host in [
        "evil.example",
        "evil.example:7080",
        "localhost.evil.example",
        "127.0.0.1.nip.io",
        "10.0.0.5:7080",
    ] {
        for path in ["/debug/policy", "/metrics", "/healthz", "/no-such-path"] {
            let (status, body) = get(&app, path, Some(host), None).await;
            assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{host}{path}");
            assert!(
                body.contains(&format!("{host:?}")) && body.contains("--admin-host"),
                "{body}"
            );
        }
    }
    let (status, body) = get(&app, "/debug/policy", None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("Host header is missing"), "{body}");
    let (status, _) = get(&app, "/debug/policy", Some("a b"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_http2_authority_is_checked_like_host() {
    let app = app(loopback(), &[], None);
    // An absolute URI stands for HTTP/2's :authority (hyper puts it there).
    let (status, _) = get(&app, "http://evil.example:7080/debug/policy", None, None).await;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
    let (status, _) = get(
        &app,
        "http://evil.example/debug/policy",
        Some("localhost"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
    let (status, _) = get(&app, "http://127.0.0.1:7080/debug/policy", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn configured_names_and_the_bound_ip_are_served() {
    let bound = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5));
    let named = app(bound, &["control.internal", "192.168.1.9"], None);
    for host in [
        "10.0.0.5:7080",
        "CONTROL.internal:7080",
        "192.168.1.9",
        "localhost",
    ] {
        let (status, body) = get(&named, "/metrics", Some(host), None).await;
        assert_eq!(status, StatusCode::OK, "{host}: {body}");
    }
    let (status, _) = get(&named, "/metrics", Some("10.0.0.6:7080"), None).await;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
    // Bound to 0.0.0.0: that is no one's name.
    let any = app(IpAddr::V4(Ipv4Addr::UNSPECIFIED), &[], None);
    let (status, _) = get(&any, "/metrics", Some("0.0.0.0:7080"), None).await;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
}

#[tokio::test]
async fn with_a_token_debug_paths_need_it_and_probes_and_metrics_stay_open() {
    let app = app(loopback(), &[], Some(TOKEN));
    let host = Some("127.0.0.1:7080");
    let api = "/apis/metrics.smi-spec.io/v1alpha1/";
    for path in ["/debug/policy", "/debug/workloads", api, "/no-such-path"] {
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Bearer t0ken-Of-the-admi"),
            Some("Bearer t0ken-Of-the-admin2"),
            Some("Basic dDBrZW4="),
            Some(TOKEN),
        ] {
            let (status, body) = get(&app, path, host, auth).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {auth:?}: {body}");
            assert!(body.starts_with("401 unauthorized"), "{body}");
        }
    }
    let right = format!("Bearer {TOKEN}");
    for (path, expected) in [
        ("/debug/policy", StatusCode::OK),
        ("/debug/workloads", StatusCode::OK),
        (api, StatusCode::OK),
        ("/no-such-path", StatusCode::NOT_FOUND),
    ] {
        let (status, _) = get(&app, path, host, Some(&right)).await;
        assert_eq!(status, expected, "{path}");
        let lower = format!("bearer {TOKEN}");
        assert_eq!(get(&app, path, host, Some(&lower)).await.0, expected);
    }
    for path in ["/healthz", "/readyz", "/metrics"] {
        let (status, _) = get(&app, path, host, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    // The Host check comes first, even with the right token.
    let (status, _) = get(&app, "/debug/policy", Some("evil.example"), Some(&right)).await;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
}

#[test]
fn the_token_file_must_be_private_and_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.token");
    let write = |text: &str, mode: u32| {
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    write(&format!("{TOKEN}\n"), 0o600);
    let token = AdminToken::from_file(&path).unwrap();
    assert!(token.verify(TOKEN.as_bytes()));
    assert!(!token.verify(b"t0ken-Of-the-admiN"));
    assert_eq!(format!("{token:?}"), "AdminToken(..)");
    write(TOKEN, 0o400);
    assert!(AdminToken::from_file(&path).is_ok());

    for (text, mode, why) in [
        (TOKEN, 0o640, "chmod 600"),
        (TOKEN, 0o604, "mode 0604"),
        ("\n", 0o600, "empty"),
        ("two words", 0o600, "visible ASCII"),
    ] {
        write(text, mode);
        let err = AdminToken::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("admin.token") && err.contains(why), "{err}");
    }
    let err = AdminToken::from_file(&dir.path().join("missing"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing"), "{err}");
    let err = AdminToken::from_file(dir.path()).unwrap_err().to_string();
    assert!(err.contains("not a regular file"), "{err}");
}
