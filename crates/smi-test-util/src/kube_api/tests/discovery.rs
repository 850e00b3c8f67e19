//! Discovery through `kube::discovery::Discovery`, as the control finds the SMI kinds.

use kube::discovery::{Discovery, Scope};

use super::{client, traffic_split_crd};
use crate::kube_api::FakeApiServer;

#[tokio::test]
async fn discovery_finds_a_crds_kinds_with_the_preferred_version() {
    let server = FakeApiServer::start().await;
    // Storage v1beta2; v1 outranks v2beta1 (GA before beta) and the rest.
    server.apply(traffic_split_crd(&["v1beta2", "v1alpha3", "v2beta1", "v1"]));
    let discovery = Discovery::new(client(&server).await)
        .run()
        .await
        .expect("discovery runs");

    let group = discovery.get("split.smi-spec.io").expect("the CRD's group");
    assert_eq!(group.preferred_version(), Some("v1"));
    let versions: Vec<&str> = group.versions().collect();
    assert_eq!(versions, ["v1", "v2beta1", "v1beta2", "v1alpha3"]);
    let (resource, caps) = group.recommended_kind("TrafficSplit").expect("the kind");
    assert_eq!(
        (resource.version.as_str(), resource.plural.as_str()),
        ("v1", "trafficsplits")
    );
    assert_eq!(caps.scope, Scope::Namespaced);
    assert!(caps.supports_operation("watch"));

    let core = discovery.get("").expect("the core group");
    let (pods, caps) = core.recommended_kind("Pod").expect("pods");
    assert_eq!(pods.plural, "pods");
    assert!(
        caps.subresources.iter().any(|(r, _)| r.plural == "status"),
        "pods/status"
    );
    let reviews = discovery
        .get("authentication.k8s.io")
        .expect("authentication");
    let (_, caps) = reviews
        .recommended_kind("TokenReview")
        .expect("tokenreviews");
    assert_eq!(
        (caps.scope.clone(), caps.operations.clone()),
        (Scope::Cluster, vec!["create".to_owned()])
    );
    for group in [
        "discovery.k8s.io",
        "events.k8s.io",
        "apiextensions.k8s.io",
        "authorization.k8s.io",
        "apiregistration.k8s.io",
    ] {
        assert!(discovery.has_group(group), "{group}");
    }

    server.delete(
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        None,
        "trafficsplits.split.smi-spec.io",
    );
    let after = Discovery::new(client(&server).await)
        .run()
        .await
        .expect("discovery runs");
    assert!(
        !after.has_group("split.smi-spec.io"),
        "a deleted CRD is no longer served"
    );
}
