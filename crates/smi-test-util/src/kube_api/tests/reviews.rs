//! TokenReview, SubjectAccessReview and Events over HTTP, with kube-rs's types.

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use super::{client, config};
use crate::kube_api::{FakeApiServer, TokenIdentity};

fn token_review(token: &str, audiences: &[&str]) -> TokenReview {
    TokenReview {
        spec: TokenReviewSpec {
            token: token.to_owned(),
            audiences: Some(audiences.iter().map(|a| (*a).to_owned()).collect()),
        },
        ..TokenReview::default()
    }
}

#[tokio::test]
async fn token_reviews_authenticate_tokens_for_their_audiences_only() {
    let server = FakeApiServer::start().await;
    let identity = TokenIdentity::service_account("shop", "web", &["smi-control"])
        .bound_to_pod("web-1", "pod-uid-1");
    server.add_token("sa-token", identity.clone());
    let reviews: Api<TokenReview> = Api::all(client(&server).await);

    let ok = reviews
        .create(
            &PostParams::default(),
            &token_review("sa-token", &["smi-control"]),
        )
        .await
        .expect("reviewed");
    let status = ok.status.expect("a status");
    assert_eq!(status.authenticated, Some(true), "{:?}", status.error);
    assert_eq!(status.audiences, Some(vec!["smi-control".to_owned()]));
    let user = status.user.expect("a user");
    assert_eq!(
        user.username.as_deref(),
        Some("system:serviceaccount:shop:web")
    );
    assert_eq!(user.uid, Some(identity.uid));
    let extra = user.extra.expect("extra");
    assert_eq!(extra["authentication.kubernetes.io/pod-name"], ["web-1"]);
    assert_eq!(extra["authentication.kubernetes.io/pod-uid"], ["pod-uid-1"]);

    let wrong = reviews
        .create(
            &PostParams::default(),
            &token_review("sa-token", &["other"]),
        )
        .await
        .expect("reviewed");
    let status = wrong.status.expect("a status");
    assert_eq!(status.authenticated, Some(false));
    let error = status.error.expect("an error");
    assert!(
        error.contains(
            r#"token audiences ["smi-control"] is invalid for the target audiences ["other"]"#
        ),
        "{error}"
    );

    let unknown = reviews
        .create(
            &PostParams::default(),
            &token_review("forged", &["smi-control"]),
        )
        .await
        .expect("reviewed");
    assert_eq!(unknown.status.expect("a status").authenticated, Some(false));
}

#[tokio::test]
async fn an_unavailable_token_review_answers_503() {
    let server = FakeApiServer::start().await;
    server.add_token(
        "t",
        TokenIdentity::service_account("shop", "web", &["smi-control"]),
    );
    let mut config = config(&server).await;
    config.default_retry = false;
    let reviews: Api<TokenReview> = Api::all(kube::Client::try_from(config).expect("a client"));

    server.set_unavailable("/apis/authentication.k8s.io/", true);
    let failed = reviews
        .create(&PostParams::default(), &token_review("t", &["smi-control"]))
        .await;
    match failed {
        Err(kube::Error::Api(status)) => assert_eq!(
            (status.code, status.reason.as_str()),
            (503, "ServiceUnavailable")
        ),
        other => panic!("expected 503, got {other:?}"),
    }
    server.set_unavailable("/apis/authentication.k8s.io/", false);
    let ok = reviews
        .create(&PostParams::default(), &token_review("t", &["smi-control"]))
        .await
        .expect("available again");
    assert_eq!(ok.status.and_then(|s| s.authenticated), Some(true));
}

#[tokio::test]
async fn subject_access_reviews_allow_what_the_rules_allow() {
    let server = FakeApiServer::start().await;
    server.allow("system:kube-aggregator", "get", "metrics.smi-spec.io", "*");
    let reviews: Api<SubjectAccessReview> = Api::all(client(&server).await);
    let review = |user: &str, verb: &str| SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_owned()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.to_owned()),
                group: Some("metrics.smi-spec.io".to_owned()),
                resource: Some("trafficmetrics".to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    for (user, verb, allowed) in [
        ("system:kube-aggregator", "get", true),
        ("system:kube-aggregator", "delete", false),
        ("mallory", "get", false),
    ] {
        let answer = reviews
            .create(&PostParams::default(), &review(user, verb))
            .await
            .expect("reviewed");
        assert_eq!(
            answer.status.expect("a status").allowed,
            allowed,
            "{user} {verb}"
        );
    }
}

#[tokio::test]
async fn events_a_client_records_are_listed() {
    let server = FakeApiServer::start().await;
    let reporter = Reporter {
        controller: "smi-control".into(),
        instance: None,
    };
    let recorder = Recorder::new(client(&server).await, reporter);
    let split = ObjectReference {
        api_version: Some("split.smi-spec.io/v1alpha4".into()),
        kind: Some("TrafficSplit".into()),
        name: Some("web".into()),
        namespace: Some("default".into()),
        ..ObjectReference::default()
    };
    let event = Event {
        type_: EventType::Warning,
        reason: "InvalidResource".into(),
        note: Some("spec.backends: weights sum to 0".into()),
        action: "Validate".into(),
        secondary: None,
    };
    recorder.publish(&event, &split).await.expect("published");
    let events = server.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["apiVersion"], "events.k8s.io/v1");
    assert_eq!(events[0]["reason"], "InvalidResource");
    assert_eq!(events[0]["regarding"]["name"], "web");
}
