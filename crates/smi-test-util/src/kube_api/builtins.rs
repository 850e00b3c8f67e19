//! The built-in resources the fake serves, as the real server's discovery describes them:
//! scope, kind, status subresource, what DELETE answers, and the field selectors each supports.

use super::resources::ResourceType;

pub(super) const ALL: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const CREATE_ONLY: &[&str] = &["create"];

#[allow(clippy::too_many_arguments)] // a table row, read column by column below
fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    status: bool,
    returns_deleted: bool,
    fields: &[&str],
) -> ResourceType {
    ResourceType {
        group: group.to_owned(),
        versions: vec![version.to_owned()],
        storage: version.to_owned(),
        plural: plural.to_owned(),
        singular: kind.to_ascii_lowercase(),
        kind: kind.to_owned(),
        namespaced,
        verbs: ALL,
        status,
        returns_deleted,
        fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        short_names: Vec::new(),
        custom: false,
    }
}

pub(super) fn builtins() -> Vec<ResourceType> {
    let event_fields = [
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ];
    let pod_fields = [
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ];
    let mut types = vec![
        builtin(
            "",
            "v1",
            "namespaces",
            "Namespace",
            false,
            true,
            true,
            &["status.phase"],
        ),
        builtin("", "v1", "pods", "Pod", true, true, true, &pod_fields),
        builtin("", "v1", "services", "Service", true, true, false, &[]),
        builtin("", "v1", "secrets", "Secret", true, false, false, &["type"]),
        builtin("", "v1", "configmaps", "ConfigMap", true, false, false, &[]),
        builtin(
            "",
            "v1",
            "events",
            "Event",
            true,
            false,
            false,
            &event_fields,
        ),
        builtin(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            true,
            false,
            false,
            &[],
        ),
        builtin(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            "EndpointSlice",
            true,
            false,
            false,
            &["addressType"],
        ),
        builtin(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            true,
            false,
            false,
            &[],
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            true,
            true,
            &[],
        ),
        builtin(
            "authentication.k8s.io",
            "v1",
            "tokenreviews",
            "TokenReview",
            false,
            false,
            false,
            &[],
        ),
        builtin(
            "authorization.k8s.io",
            "v1",
            "subjectaccessreviews",
            "SubjectAccessReview",
            false,
            false,
            false,
            &[],
        ),
        builtin(
            "apiregistration.k8s.io",
            "v1",
            "apiservices",
            "APIService",
            false,
            true,
            false,
            &[],
        ),
    ];
    for t in &mut types {
        if t.group.ends_with("authentication.k8s.io") || t.group.ends_with("authorization.k8s.io") {
            t.verbs = CREATE_ONLY;
        }
        t.short_names = match t.plural.as_str() {
            "namespaces" => vec!["ns".into()],
            "pods" => vec!["po".into()],
            "services" => vec!["svc".into()],
            "configmaps" => vec!["cm".into()],
            "serviceaccounts" => vec!["sa".into()],
            "customresourcedefinitions" => vec!["crd".into(), "crds".into()],
            "events" if t.group.is_empty() => vec!["ev".into()],
            _ => Vec::new(),
        };
    }
    types
}
