//! TokenReview and SubjectAccessReview, answered from the test's tables: the tokens it added
//! ([`TokenIdentity`]) and the access it allowed. Neither is stored, as on the real server.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::status::ApiError;

/// The audience the fake checks a token against when a TokenReview names none: the API
/// server's own, as a cluster with the default service account issuer has it.
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// Who a bearer token belongs to, for the fake API server's TokenReviews
/// ([`FakeApiServer::add_token`](super::FakeApiServer::add_token)): what the real server's
/// ServiceAccount token authenticator would report for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenIdentity {
    /// `system:serviceaccount:NAMESPACE:NAME` for a ServiceAccount token.
    pub username: String,
    pub uid: String,
    /// The audiences the token was issued for (`aud`).
    pub audiences: Vec<String>,
    /// The pod a bound token was issued for.
    pub pod_name: Option<String>,
    pub pod_uid: Option<String>,
}

impl TokenIdentity {
    /// A ServiceAccount's token for `audiences`, not bound to a pod.
    pub fn service_account(namespace: &str, name: &str, audiences: &[&str]) -> TokenIdentity {
        TokenIdentity {
            username: format!("system:serviceaccount:{namespace}:{name}"),
            uid: super::ids::uid(),
            audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
            pod_name: None,
            pod_uid: None,
        }
    }

    /// The same token, bound to a pod.
    #[must_use]
    pub fn bound_to_pod(mut self, name: &str, uid: &str) -> TokenIdentity {
        self.pod_name = Some(name.to_owned());
        self.pod_uid = Some(uid.to_owned());
        self
    }

    /// The groups the real server gives the user: a ServiceAccount's two, and
    /// `system:authenticated`.
    fn groups(&self) -> Vec<String> {
        let mut groups = Vec::new();
        if let Some(rest) = self.username.strip_prefix("system:serviceaccount:")
            && let Some((namespace, _)) = rest.split_once(':')
        {
            groups.push("system:serviceaccounts".to_owned());
            groups.push(format!("system:serviceaccounts:{namespace}"));
        }
        groups.push("system:authenticated".to_owned());
        groups
    }
}

/// One allowed access: `"*"` in any place matches anything.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    subject: String,
    verb: String,
    group: String,
    resource: String,
}

/// The tokens and rules the test set.
#[derive(Debug, Default)]
pub(super) struct Reviews {
    pub tokens: HashMap<String, TokenIdentity>,
    rules: Vec<Rule>,
}

/// Go's `%q` of a string list (`["a" "b"]`), as the real server's messages print audiences.
fn quoted(list: &[String]) -> String {
    let items: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(" "))
}

fn strings(v: &Value) -> Vec<String> {
    let list = v.as_array().into_iter().flatten();
    list.filter_map(Value::as_str).map(str::to_owned).collect()
}

// === impl Reviews ===

impl Reviews {
    pub fn allow(&mut self, subject: &str, verb: &str, group: &str, resource: &str) {
        self.rules.push(Rule {
            subject: subject.to_owned(),
            verb: verb.to_owned(),
            group: group.to_owned(),
            resource: resource.to_owned(),
        });
    }

    /// The answer to a TokenReview `review`: the review with its status.
    pub fn token_review(&self, mut review: Value) -> Result<Value, ApiError> {
        let token = review
            .pointer("/spec/token")
            .and_then(Value::as_str)
            .unwrap_or("");
        if token.is_empty() {
            return Err(ApiError::bad_request(
                "token is required for TokenReview in authentication",
            ));
        }
        let asked = strings(&review["spec"]["audiences"]);
        let targets = if asked.is_empty() {
            vec![API_AUDIENCE.to_owned()]
        } else {
            asked.clone()
        };
        let status = match self.tokens.get(token) {
            None => {
                json!({"authenticated": false, "error": "[invalid bearer token, token lookup failed]", "user": {}})
            }
            Some(id) => {
                let matched: Vec<String> = targets
                    .iter()
                    .filter(|a| id.audiences.contains(a))
                    .cloned()
                    .collect();
                if matched.is_empty() {
                    let error = format!(
                        "[invalid bearer token, token audiences {} is invalid for the target audiences {}]",
                        quoted(&id.audiences),
                        quoted(&targets)
                    );
                    json!({"authenticated": false, "error": error, "user": {}})
                } else {
                    let mut extra = serde_json::Map::new();
                    if let Some(pod) = &id.pod_name {
                        extra.insert("authentication.kubernetes.io/pod-name".into(), json!([pod]));
                    }
                    if let Some(uid) = &id.pod_uid {
                        extra.insert("authentication.kubernetes.io/pod-uid".into(), json!([uid]));
                    }
                    json!({
                        "authenticated": true,
                        "user": {"username": id.username, "uid": id.uid, "groups": id.groups(), "extra": extra},
                        "audiences": matched,
                    })
                }
            }
        };
        review["status"] = status;
        review["metadata"] = json!({"creationTimestamp": null});
        Ok(review)
    }

    /// The answer to a SubjectAccessReview `review`: allowed if a rule matches its user or one
    /// of its groups and its resource attributes (non-resource requests are never allowed).
    pub fn access_review(&self, mut review: Value) -> Result<Value, ApiError> {
        let spec = &review["spec"];
        let user = spec["user"].as_str().unwrap_or("").to_owned();
        let groups = strings(&spec["groups"]);
        let name = "";
        if user.is_empty() && groups.is_empty() {
            let why =
                "spec.user: Invalid value: \"\": at least one of user or group must be specified";
            return Err(ApiError::invalid(
                "SubjectAccessReview",
                "authorization.k8s.io",
                name,
                why,
            ));
        }
        let attrs = &spec["resourceAttributes"];
        if attrs.is_null() == spec["nonResourceAttributes"].is_null() {
            let why = "spec.resourceAttributes: Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified";
            return Err(ApiError::invalid(
                "SubjectAccessReview",
                "authorization.k8s.io",
                name,
                why,
            ));
        }
        let field = |f: &str| attrs[f].as_str().unwrap_or("").to_owned();
        let (verb, group, resource) = (field("verb"), field("group"), field("resource"));
        let matches = |pattern: &str, value: &str| pattern == "*" || pattern == value;
        let rule = self.rules.iter().find(|r| {
            let subject = r.subject == "*" || r.subject == user || groups.contains(&r.subject);
            !attrs.is_null()
                && subject
                && matches(&r.verb, &verb)
                && matches(&r.group, &group)
                && matches(&r.resource, &resource)
        });
        review["status"] = match rule {
            Some(r) => {
                json!({"allowed": true, "reason": format!("allowed by the fake's rule for {:?}", r.subject)})
            }
            None => json!({"allowed": false}),
        };
        review["metadata"] = json!({"creationTimestamp": null});
        Ok(review)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(token: &str, audiences: &[&str]) -> Value {
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
               "spec": {"token": token, "audiences": audiences}})
    }

    #[test]
    fn token_reviews_authenticate_known_tokens_for_their_audiences() {
        let mut reviews = Reviews::default();
        let id = TokenIdentity::service_account("shop", "web", &["smi-control", "other"])
            .bound_to_pod("web-1", "p-uid");
        reviews.tokens.insert("t1".into(), id.clone());

        let ok = reviews
            .token_review(review("t1", &["smi-control", "x"]))
            .expect("answered");
        assert_eq!(ok["status"]["authenticated"], true);
        assert_eq!(ok["status"]["audiences"], json!(["smi-control"]));
        assert_eq!(
            ok["status"]["user"]["username"],
            "system:serviceaccount:shop:web"
        );
        assert_eq!(ok["status"]["user"]["uid"], id.uid.as_str());
        assert_eq!(
            ok["status"]["user"]["groups"],
            json!([
                "system:serviceaccounts",
                "system:serviceaccounts:shop",
                "system:authenticated"
            ])
        );
        assert_eq!(
            ok["status"]["user"]["extra"]["authentication.kubernetes.io/pod-name"],
            json!(["web-1"])
        );

        let wrong = reviews
            .token_review(review("t1", &["elsewhere"]))
            .expect("answered");
        assert_eq!(wrong["status"]["authenticated"], false);
        let error = wrong["status"]["error"].as_str().expect("an error");
        assert!(error.contains(r#"token audiences ["smi-control" "other"] is invalid for the target audiences ["elsewhere"]"#), "{error}");

        let api = reviews.token_review(review("t1", &[])).expect("answered");
        assert_eq!(
            api["status"]["authenticated"], false,
            "not issued for the API server"
        );
        let unknown = reviews
            .token_review(review("nope", &["smi-control"]))
            .expect("answered");
        assert_eq!(unknown["status"]["authenticated"], false);
        assert!(reviews.token_review(review("", &[])).is_err());
    }

    #[test]
    fn access_reviews_allow_only_what_a_rule_allows() {
        let mut reviews = Reviews::default();
        reviews.allow("system:kube-aggregator", "get", "metrics.smi-spec.io", "*");
        let sar = |user: &str, verb: &str, resource: &str| {
            let body = json!({"spec": {"user": user, "groups": ["system:authenticated"],
                "resourceAttributes": {"verb": verb, "group": "metrics.smi-spec.io", "resource": resource}}});
            reviews.access_review(body).expect("answered")["status"]["allowed"].clone()
        };
        assert_eq!(sar("system:kube-aggregator", "get", "pods"), true);
        assert_eq!(sar("system:kube-aggregator", "delete", "pods"), false);
        assert_eq!(sar("someone", "get", "pods"), false);
        assert!(
            reviews
                .access_review(json!({"spec": {"user": "u"}}))
                .is_err()
        );
    }
}
