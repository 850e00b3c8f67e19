//! [`TokenReviewAuthenticator`]: a pod proves who it is with its projected ServiceAccount token
//! (audience [`TOKEN_AUDIENCE`]). The control asks the API server (a `TokenReview`) whether the
//! token is good, then reads the pod the token is bound to: it must still exist (same uid) and
//! run as the token's ServiceAccount. The grant is that ServiceAccount, serving the Services of
//! the pod's namespace that select the pod.
//!
//! Each Certify is a fresh proof (the kubelet rotates the token, and workloads renew with the
//! current one), so a deleted pod stops getting certificates at its next renewal. A call to the
//! API server that fails or takes longer than [`TIMEOUT`] refuses with
//! [`Refusal::KubernetesUnavailable`] (`UNAVAILABLE`: the workload retries).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams, PostParams};
use smi_core::telemetry::Workload;
use smi_core::{ServiceAccount, ServiceRef};

use super::TOKEN_AUDIENCE;
use crate::enroll::{Grant, Refusal, is_join_token};
use crate::traits::{Authenticator, Credential};

/// How long one call to the API server (the review, the pod, the Services) may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The extras a pod-bound token's review carries.
const POD_NAME: &str = "authentication.kubernetes.io/pod-name";
const POD_UID: &str = "authentication.kubernetes.io/pod-uid";
/// The longest token considered (projected tokens are about 1 KiB).
const MAX_TOKEN: usize = 64 * 1024;

pub struct TokenReviewAuthenticator {
    client: kube::Client,
    timeout: Duration,
    /// Reviews in flight at once: anyone who reaches the Certify API can send JWT-shaped text,
    /// and each would cost the API server a TokenReview; beyond this many, callers wait (and a
    /// wait longer than the timeout is a refusal to retry).
    in_flight: tokio::sync::Semaphore,
}

/// How many reviews go to the API server at once.
pub const MAX_REVIEWS_IN_FLIGHT: usize = 16;

impl std::fmt::Debug for TokenReviewAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenReviewAuthenticator")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What a successful review says: the ServiceAccount, and the pod the token is bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Bound {
    account: ServiceAccount,
    pod: String,
    pod_uid: String,
}

impl TokenReviewAuthenticator {
    /// Reviews through `client`, which needs `create` on `tokenreviews` and `get`/`list` on
    /// pods and services.
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            timeout: TIMEOUT,
            in_flight: tokio::sync::Semaphore::new(MAX_REVIEWS_IN_FLIGHT),
        }
    }

    /// How long one call to the API server may take before the token is refused as
    /// unreachable. Default [`TIMEOUT`].
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Decides `token`: the review, then its pod, then the Services that select the pod.
    pub async fn review(&self, token: &str) -> Result<Grant, Refusal> {
        let _permit = tokio::time::timeout(self.timeout, self.in_flight.acquire())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| Refusal::KubernetesUnavailable {
                what: "TokenReview".to_owned(),
                error: format!("{MAX_REVIEWS_IN_FLIGHT} reviews already in flight"),
            })?;
        let token = token.trim();
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                audiences: Some(vec![TOKEN_AUDIENCE.to_owned()]),
            },
            ..TokenReview::default()
        };
        let reviews: Api<TokenReview> = Api::all(self.client.clone());
        let reviewed = self
            .ask(
                "TokenReview",
                reviews.create(&PostParams::default(), &review),
            )
            .await?
            .ok_or_else(|| unavailable("TokenReview", "the API serves no TokenReviews"))?;
        let bound = bound(reviewed.status.unwrap_or_default(), token)?;
        let namespace = bound.account.namespace.as_str();
        let pod_ref = format!("{namespace}/{}", bound.pod);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let pod = self
            .ask(&format!("GET pod {pod_ref}"), pods.get(&bound.pod))
            .await?
            .ok_or_else(|| Refusal::PodGone {
                pod: pod_ref.clone(),
                why: "not found".to_owned(),
            })?;
        check_pod(&bound, &pod)?;
        let services: Api<Service> = Api::namespaced(self.client.clone(), namespace);
        let what = format!("list Services in {namespace}");
        let listed = self
            .ask(&what, services.list(&ListParams::default()))
            .await?
            .ok_or_else(|| unavailable(&what, "not found"))?;
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let mut serves: Vec<ServiceRef> = listed
            .items
            .iter()
            .filter(|s| {
                let selector = s.spec.as_ref().and_then(|spec| spec.selector.as_ref());
                selector.is_some_and(|selector| selects(selector, &labels))
            })
            .filter_map(|s| Some(ServiceRef::new(namespace, s.metadata.name.clone()?)))
            .collect();
        serves.sort();
        tracing::debug!(pod = %pod_ref, identity = %bound.account, ?serves, "ServiceAccount token reviewed");
        Ok(Grant {
            via: format!("ServiceAccount token (pod {pod_ref})"),
            workload: Some(Workload::new(namespace, workload_name(&pod), &bound.pod))
                .filter(|w| w.check().is_ok()),
            identity: bound.account,
            serves,
            first_enrolled: SystemTime::now(),
            token: None,
            names_proven: true,
        })
    }

    /// `call`, bounded by the timeout: `None` if the API answered 404; an unreachable API, a
    /// 5xx or any other failure is [`Refusal::KubernetesUnavailable`].
    async fn ask<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<Option<T>, Refusal> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(answer)) => Ok(Some(answer)),
            Ok(Err(kube::Error::Api(status))) if status.code == 404 => Ok(None),
            Ok(Err(e)) => Err(unavailable(what, &e.to_string())),
            Err(_) => Err(unavailable(
                what,
                &format!("no answer within {:?}", self.timeout),
            )),
        }
    }
}

fn unavailable(what: &str, error: &str) -> Refusal {
    Refusal::KubernetesUnavailable {
        what: what.to_owned(),
        error: error.to_owned(),
    }
}

/// Whether `text` has a JWT's form (three base64url segments) and is not a join token.
pub fn is_service_account_token(text: &str) -> bool {
    let text = text.trim();
    let base64url = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    !is_join_token(text)
        && text.len() <= MAX_TOKEN
        && text.split('.').count() == 3
        && text.split('.').all(base64url)
}

/// The ServiceAccount of a reviewed username, `system:serviceaccount:<namespace>:<name>`.
fn service_account(username: &str) -> Option<ServiceAccount> {
    let (namespace, name) = username
        .strip_prefix("system:serviceaccount:")?
        .split_once(':')?;
    format!("{namespace}/{name}").parse().ok()
}

/// What a review's status proves: authenticated, for our audience, a ServiceAccount, bound to
/// a pod. `token` only names the audiences it claims when the API server refused it.
fn bound(status: TokenReviewStatus, token: &str) -> Result<Bound, Refusal> {
    if status.authenticated != Some(true) {
        let claimed = claimed_audiences(token);
        if let Some(audiences) = claimed.filter(|a| !a.iter().any(|a| a == TOKEN_AUDIENCE)) {
            return Err(wrong_audience(audiences));
        }
        return Err(Refusal::TokenNotAuthenticated {
            error: status.error.unwrap_or_else(|| "no reason given".to_owned()),
        });
    }
    let audiences = status.audiences.unwrap_or_default();
    if !audiences.iter().any(|a| a == TOKEN_AUDIENCE) {
        return Err(wrong_audience(audiences));
    }
    let user = status.user.unwrap_or_default();
    let username = user.username.unwrap_or_default();
    let account = service_account(&username).ok_or(Refusal::NotServiceAccount { username })?;
    let extra = user.extra.unwrap_or_default();
    let one = |key: &str| {
        extra
            .get(key)
            .and_then(|values| values.first())
            .filter(|v| !v.is_empty())
            .cloned()
    };
    match (one(POD_NAME), one(POD_UID)) {
        (Some(pod), Some(pod_uid)) => Ok(Bound {
            account,
            pod,
            pod_uid,
        }),
        _ => Err(Refusal::NotPodBound {
            account: account.to_string(),
        }),
    }
}

fn wrong_audience(audiences: Vec<String>) -> Refusal {
    Refusal::TokenAudience {
        audiences,
        wanted: TOKEN_AUDIENCE.to_owned(),
    }
}

/// The audiences the token's (unverified) claims name, to explain a refusal; `None` if they
/// cannot be read.
fn claimed_audiences(token: &str) -> Option<Vec<String>> {
    let payload = token.split('.').nth(1)?;
    let json = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
    match claims.get("aud")? {
        serde_json::Value::String(one) => Some(vec![one.clone()]),
        serde_json::Value::Array(many) => {
            many.iter().map(|a| a.as_str().map(str::to_owned)).collect()
        }
        _ => None,
    }
}

/// The pod is the one the token was made for (same uid) and runs as its ServiceAccount.
fn check_pod(bound: &Bound, pod: &Pod) -> Result<(), Refusal> {
    let pod_ref = format!("{}/{}", bound.account.namespace, bound.pod);
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    if uid != bound.pod_uid {
        return Err(Refusal::PodGone {
            pod: pod_ref,
            why: format!(
                "the pod of that name now has uid {uid:?}; the token's had {:?}",
                bound.pod_uid
            ),
        });
    }
    let runs_as = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref())
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    if runs_as != bound.account.name {
        return Err(Refusal::AccountMismatch {
            pod: pod_ref,
            runs_as: format!("{}/{runs_as}", bound.account.namespace),
            token_for: bound.account.to_string(),
        });
    }
    Ok(())
}

/// A Service's selector selects a pod when it is not empty and every key has the pod's value
/// (an empty selector selects nothing: such a Service has its endpoints managed by hand).
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The pod's workload: its controller's name (a ReplicaSet's without its
/// `-<pod-template-hash>`, which is the Deployment's), else the name the pod's own name implies
/// ([`Workload::name_of_pod`]).
fn workload_name(pod: &Pod) -> String {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let controller = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    let Some(owner) = controller else {
        return Workload::name_of_pod(name).to_owned();
    };
    if owner.kind != "ReplicaSet" {
        return owner.name.clone();
    }
    let hash = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("pod-template-hash"));
    match hash.and_then(|h| owner.name.strip_suffix(&format!("-{h}"))) {
        Some(deployment) if !deployment.is_empty() => deployment.to_owned(),
        _ => Workload::name_of_pod(name).to_owned(),
    }
}

impl Authenticator for TokenReviewAuthenticator {
    fn accepts(&self) -> &'static str {
        "a pod's projected ServiceAccount token (a JWT for audience smi-mesh)"
    }

    /// A token with a JWT's form that is not a join token; a certificate presented with it is
    /// ignored (a renewal that sends the rotated token is a fresh proof).
    fn recognizes(&self, credential: &Credential<'_>) -> bool {
        credential.token.is_some_and(is_service_account_token)
    }

    fn authenticate<'a>(
        &'a self,
        credential: &'a Credential<'a>,
    ) -> BoxFuture<'a, Result<Grant, Refusal>> {
        Box::pin(self.review(credential.token.unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests;
