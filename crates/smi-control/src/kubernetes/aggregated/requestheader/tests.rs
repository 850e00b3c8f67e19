//! The ConfigMap read, the front proxy's certificate checked, and the headers read as
//! k8s.io/apiserver reads them.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, HeaderValue};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::*;

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("a key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let cert = params.self_signed(&key).expect("self-signed");
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A client certificate with `cn` (for client authentication unless `server`).
    fn client(&self, cn: &str, usage: ExtendedKeyUsagePurpose) -> CertificateDer<'static> {
        let key = KeyPair::generate().expect("a key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        params
            .signed_by(&key, &self.issuer)
            .expect("signed")
            .der()
            .clone()
    }
}

fn configmap(data: &[(&str, &str)]) -> ConfigMap {
    let data: BTreeMap<String, String> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    ConfigMap {
        data: Some(data),
        ..ConfigMap::default()
    }
}

/// The ConfigMap as kube-apiserver writes it (kubeadm's flags).
fn kubeadm(ca: &Ca, allowed: &str) -> ConfigMap {
    configmap(&[
        ("requestheader-client-ca-file", &ca.pem),
        ("requestheader-allowed-names", allowed),
        ("requestheader-username-headers", r#"["X-Remote-User"]"#),
        ("requestheader-group-headers", r#"["X-Remote-Group"]"#),
        (
            "requestheader-extra-headers-prefix",
            r#"["X-Remote-Extra-"]"#,
        ),
        ("client-ca-file", "not read"),
    ])
}

fn front(ca: &Ca, allowed: &str) -> FrontProxy {
    let config = RequestHeaderConfig::try_from(&kubeadm(ca, allowed)).expect("a valid ConfigMap");
    FrontProxy::new(config, 1).expect("a front proxy")
}

#[test]
fn reads_the_configmap_kube_apiserver_writes() {
    let ca = Ca::new("front-proxy-ca");
    let config = RequestHeaderConfig::try_from(&kubeadm(&ca, r#"["front-proxy-client"]"#))
        .expect("a valid ConfigMap");
    assert_eq!(config.client_ca.len(), 1);
    assert_eq!(&*config.allowed_names, ["front-proxy-client"]);
    assert_eq!(
        &*config.username_headers,
        [HeaderName::from_static("x-remote-user")]
    );
    assert_eq!(
        &*config.group_headers,
        [HeaderName::from_static("x-remote-group")]
    );
    assert_eq!(&*config.extra_prefixes, ["x-remote-extra-"]);
    assert!(config.uid_headers.is_empty());
}

#[test]
fn refuses_a_configmap_that_describes_no_front_proxy() {
    let ca = Ca::new("front-proxy-ca");
    let cases = [
        (
            configmap(&[("client-ca-file", "x")]),
            "requestheader-client-ca-file",
        ),
        (
            configmap(&[("requestheader-client-ca-file", "not PEM")]),
            "requestheader-client-ca-file",
        ),
        (
            configmap(&[
                ("requestheader-client-ca-file", &ca.pem),
                ("requestheader-username-headers", "X-Remote-User"),
            ]),
            "requestheader-username-headers",
        ),
        (
            configmap(&[
                ("requestheader-client-ca-file", &ca.pem),
                ("requestheader-group-headers", r#"["X-Remote-Group", " "]"#),
            ]),
            "requestheader-group-headers",
        ),
        (
            configmap(&[
                ("requestheader-client-ca-file", &ca.pem),
                ("requestheader-username-headers", r#"["bad header"]"#),
            ]),
            "requestheader-username-headers",
        ),
    ];
    for (map, key) in cases {
        let error = RequestHeaderConfig::try_from(&map).expect_err("refused");
        assert_eq!(error.key, key, "{error}");
        assert!(
            error
                .to_string()
                .starts_with("ConfigMap kube-system/extension-apiserver-authentication: "),
            "{error}"
        );
    }
}

#[test]
fn trusts_only_the_front_proxy_certificate() {
    let ca = Ca::new("front-proxy-ca");
    let other = Ca::new("front-proxy-ca");
    let allowed = front(&ca, r#"["front-proxy-client"]"#);
    let proxy = ca.client("front-proxy-client", ExtendedKeyUsagePurpose::ClientAuth);
    assert_eq!(allowed.verify(std::slice::from_ref(&proxy)), Ok(()));

    let foreign = other.client("front-proxy-client", ExtendedKeyUsagePurpose::ClientAuth);
    assert!(matches!(
        allowed.verify(&[foreign]),
        Err(Unauthenticated::Untrusted(_))
    ));
    let server_only = ca.client("front-proxy-client", ExtendedKeyUsagePurpose::ServerAuth);
    assert!(matches!(
        allowed.verify(&[server_only]),
        Err(Unauthenticated::Untrusted(_))
    ));
    let renamed = ca.client("someone", ExtendedKeyUsagePurpose::ClientAuth);
    assert_eq!(
        allowed.verify(std::slice::from_ref(&renamed)),
        Err(Unauthenticated::NameNotAllowed("someone".into()))
    );
    assert_eq!(
        front(&ca, "").verify(std::slice::from_ref(&renamed)),
        Ok(()),
        "no allowed names: any CN"
    );
    assert_eq!(
        front(&ca, "[]").verify(std::slice::from_ref(&renamed)),
        Ok(())
    );
    assert_eq!(allowed.verify(&[]), Err(Unauthenticated::NoCertificate));
    assert_eq!(
        FrontProxy::closed(2).verify(&[proxy]),
        Err(Unauthenticated::NotConfigured)
    );
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

#[test]
fn reads_the_user_as_kubernetes_reads_it() {
    let ca = Ca::new("front-proxy-ca");
    let mut map = kubeadm(&ca, "");
    let data = map.data.as_mut().expect("data");
    data.insert(
        "requestheader-username-headers".into(),
        r#"["X-Remote-User", "X-Other-User"]"#.into(),
    );
    data.insert(
        "requestheader-group-headers".into(),
        r#"["X-Remote-Group", "X-Other-Group"]"#.into(),
    );
    data.insert(
        "requestheader-uid-headers".into(),
        r#"["X-Remote-Uid"]"#.into(),
    );
    let front =
        FrontProxy::new(RequestHeaderConfig::try_from(&map).expect("valid"), 1).expect("front");

    let user = front
        .user(&headers(&[
            ("x-remote-user", ""),
            ("x-other-user", "alice"),
            ("x-other-user", "mallory"),
            ("x-remote-uid", "u-1"),
            ("x-remote-group", "devs"),
            ("x-remote-group", "a,b"),
            ("x-remote-group", ""),
            ("x-other-group", "ops"),
            ("x-remote-extra-scopes", "view"),
            ("x-remote-extra-scopes", "edit"),
            ("x-remote-extra-acme.com%2fproject", "p1"),
        ]))
        .expect("a user");
    assert_eq!(
        user.name, "alice",
        "the first header with a value; its first value"
    );
    assert_eq!(user.uid, "u-1");
    assert_eq!(
        user.groups,
        ["devs", "a,b", "ops", AUTHENTICATED],
        "one group per value"
    );
    let extra: BTreeMap<String, Vec<String>> = [
        ("acme.com/project".to_owned(), vec!["p1".to_owned()]),
        (
            "scopes".to_owned(),
            vec!["view".to_owned(), "edit".to_owned()],
        ),
    ]
    .into();
    assert_eq!(user.extra, extra);

    let already = front
        .user(&headers(&[
            ("x-remote-user", "bob"),
            ("x-remote-group", AUTHENTICATED),
        ]))
        .expect("a user");
    assert_eq!(already.groups, [AUTHENTICATED], "not added twice");
    assert_eq!(
        front.user(&headers(&[("x-remote-group", "devs")])),
        Err(Unauthenticated::NoUser(
            "x-remote-user, x-other-user".into()
        ))
    );
}

#[test]
fn strips_the_headers_that_name_a_user() {
    let ca = Ca::new("front-proxy-ca");
    let front = front(&ca, "");
    let mut map = headers(&[
        ("x-remote-user", "alice"),
        ("x-remote-group", "devs"),
        ("x-remote-extra-scopes", "view"),
        ("accept", "application/json"),
    ]);
    front.strip(&mut map);
    assert_eq!(map.len(), 1, "{map:?}");
    assert!(map.contains_key("accept"));
}
