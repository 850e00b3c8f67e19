use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::*;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn jwt(claims: &str) -> String {
    let part = |s: &str| URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.{}",
        part(r#"{"alg":"RS256"}"#),
        part(claims),
        part("sig")
    )
}

fn reviewed(username: &str, audiences: &[&str], extra: &[(&str, &str)]) -> TokenReviewStatus {
    TokenReviewStatus {
        authenticated: Some(true),
        audiences: Some(audiences.iter().map(|a| (*a).to_owned()).collect()),
        user: Some(UserInfo {
            username: Some(username.to_owned()),
            extra: Some(
                extra
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
                    .collect(),
            ),
            ..UserInfo::default()
        }),
        error: None,
    }
}

const SA: &str = "system:serviceaccount:bookstore:bookstore-v1";
const POD: &[(&str, &str)] = &[(POD_NAME, "bookstore-v1-0"), (POD_UID, "u1")];

#[test]
fn recognizes_a_jwt_and_leaves_join_tokens_and_other_text_alone() {
    assert!(is_service_account_token(&jwt(r#"{"aud":["smi-mesh"]}"#)));
    assert!(is_service_account_token(" eyJh.eyJi.c2ln\n"), "trimmed");
    for other in [
        "smi1.eyJi.c2ln",
        "a.b",
        "a.b.c.d",
        "a..c",
        "a.b+.c",
        "a.b.c=",
        "a b.c.d",
        "",
    ] {
        assert!(!is_service_account_token(other), "{other:?}");
    }
    assert!(!is_service_account_token(&format!(
        "a.b.{}",
        "c".repeat(MAX_TOKEN)
    )));
}

#[test]
fn parses_service_account_usernames_only() {
    assert_eq!(
        service_account(SA),
        Some(ServiceAccount::new("bookstore", "bookstore-v1"))
    );
    for other in [
        "system:serviceaccount:bookstore",
        "system:serviceaccount:Book:x",
        "system:serviceaccount:a:b:c",
        "system:node:n1",
        "alice",
        "",
    ] {
        assert_eq!(service_account(other), None, "{other:?}");
    }
}

#[test]
fn a_review_proves_a_service_account_bound_to_a_pod() {
    let proved = bound(reviewed(SA, &["smi-mesh"], POD), "t");
    assert_eq!(
        proved,
        Ok(Bound {
            account: ServiceAccount::new("bookstore", "bookstore-v1"),
            pod: "bookstore-v1-0".into(),
            pod_uid: "u1".into(),
        })
    );
    let other_audience = bound(reviewed(SA, &["api"], POD), "t").unwrap_err();
    assert_eq!(
        other_audience.to_string(),
        "the token is for audiences [api]; mount a projected token with audience smi-mesh"
    );
    let user = bound(reviewed("alice", &["smi-mesh"], POD), "t");
    assert!(matches!(user, Err(Refusal::NotServiceAccount { .. })));
    let unbound = bound(reviewed(SA, &["smi-mesh"], &[]), "t").unwrap_err();
    assert!(
        unbound
            .to_string()
            .contains("a pod-bound projected token is required")
    );
}

#[test]
fn a_refused_token_names_the_audiences_it_claims() {
    let refused = TokenReviewStatus {
        authenticated: Some(false),
        error: Some("token expired".into()),
        ..TokenReviewStatus::default()
    };
    let aud = jwt(r#"{"aud":["https://kubernetes.default.svc"]}"#);
    assert!(matches!(
        bound(refused.clone(), &aud),
        Err(Refusal::TokenAudience { audiences, .. }) if audiences == ["https://kubernetes.default.svc"]
    ));
    let ours = jwt(r#"{"aud":"smi-mesh"}"#);
    assert_eq!(
        bound(refused, &ours),
        Err(Refusal::TokenNotAuthenticated {
            error: "token expired".into()
        })
    );
}

fn pod(uid: &str, account: Option<&str>, owner: Option<(&str, &str)>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("bookstore-v1-5d8f7c9b4-x2x7q".into()),
            uid: Some(uid.into()),
            labels: Some(map(&[
                ("app", "bookstore"),
                ("pod-template-hash", "5d8f7c9b4"),
            ])),
            owner_references: owner.map(|(kind, name)| {
                vec![OwnerReference {
                    kind: kind.into(),
                    name: name.into(),
                    controller: Some(true),
                    ..OwnerReference::default()
                }]
            }),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            service_account_name: account.map(str::to_owned),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

#[test]
fn the_pod_must_be_the_tokens_and_run_as_its_account() {
    let bound = Bound {
        account: ServiceAccount::new("bookstore", "bookstore-v1"),
        pod: "p".into(),
        pod_uid: "u1".into(),
    };
    assert_eq!(
        check_pod(&bound, &pod("u1", Some("bookstore-v1"), None)),
        Ok(())
    );
    let replaced = check_pod(&bound, &pod("u2", Some("bookstore-v1"), None));
    assert!(
        matches!(replaced, Err(Refusal::PodGone { .. })),
        "{replaced:?}"
    );
    let other = check_pod(&bound, &pod("u1", None, None)).unwrap_err();
    assert_eq!(
        other.to_string(),
        "pod bookstore/p runs as ServiceAccount bookstore/default, but the token is for bookstore/bookstore-v1: send the pod's own projected token"
    );
}

#[test]
fn a_selector_selects_when_every_pair_matches() {
    let labels = map(&[("app", "bookstore"), ("version", "v1")]);
    assert!(selects(&map(&[("app", "bookstore")]), &labels));
    assert!(selects(
        &map(&[("app", "bookstore"), ("version", "v1")]),
        &labels
    ));
    assert!(!selects(
        &map(&[("app", "bookstore"), ("version", "v2")]),
        &labels
    ));
    assert!(!selects(&map(&[("tier", "web")]), &labels));
    assert!(
        !selects(&map(&[]), &labels),
        "an empty selector selects nothing"
    );
}

#[test]
fn the_workload_is_the_pods_controller() {
    let rs = Some(("ReplicaSet", "bookstore-v1-5d8f7c9b4"));
    assert_eq!(workload_name(&pod("u", None, rs)), "bookstore-v1");
    let sts = Some(("StatefulSet", "db"));
    assert_eq!(workload_name(&pod("u", None, sts)), "db");
    assert_eq!(workload_name(&pod("u", None, None)), "bookstore-v1");
}
