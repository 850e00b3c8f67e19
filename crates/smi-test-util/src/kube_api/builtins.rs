//! The built-in resources the fake serves (all in version `v1` of their group), as the real
//! server's discovery describes them: scope, kind, status subresource, what DELETE answers,
//! the field selectors each supports, and short names.

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

/// Flags of a row of [`TABLE`].
const NAMESPACED: u8 = 1;
const STATUS: u8 = 2;
const RETURNS_DELETED: u8 = 4;
/// TokenReview and SubjectAccessReview: created (answered), never stored.
const REVIEW: u8 = 8;

const POD_FIELDS: &[&str] = &[
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];
const EVENT_FIELDS: &[&str] = &[
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

type Row = (
    &'static str,
    &'static str,
    &'static str,
    u8,
    &'static [&'static str],
    &'static [&'static str],
);

/// Group, plural, kind, flags, field selectors, short names.
#[rustfmt::skip]
const TABLE: &[Row] = &[
    ("", "namespaces", "Namespace", STATUS | RETURNS_DELETED, &["status.phase"], &["ns"]),
    ("", "pods", "Pod", NAMESPACED | STATUS | RETURNS_DELETED, POD_FIELDS, &["po"]),
    ("", "services", "Service", NAMESPACED | STATUS, &[], &["svc"]),
    ("", "secrets", "Secret", NAMESPACED, &["type"], &[]),
    ("", "configmaps", "ConfigMap", NAMESPACED, &[], &["cm"]),
    ("", "events", "Event", NAMESPACED, EVENT_FIELDS, &["ev"]),
    ("", "serviceaccounts", "ServiceAccount", NAMESPACED, &[], &["sa"]),
    ("discovery.k8s.io", "endpointslices", "EndpointSlice", NAMESPACED, &["addressType"], &[]),
    ("events.k8s.io", "events", "Event", NAMESPACED, &[], &[]),
    ("apiextensions.k8s.io", "customresourcedefinitions", "CustomResourceDefinition", STATUS | RETURNS_DELETED, &[], &["crd", "crds"]),
    ("authentication.k8s.io", "tokenreviews", "TokenReview", REVIEW, &[], &[]),
    ("authorization.k8s.io", "subjectaccessreviews", "SubjectAccessReview", REVIEW, &[], &[]),
    ("apiregistration.k8s.io", "apiservices", "APIService", STATUS, &[], &[]),
];

pub(super) fn builtins() -> Vec<ResourceType> {
    let strings = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
    TABLE
        .iter()
        .map(
            |&(group, plural, kind, flags, fields, short_names)| ResourceType {
                group: group.to_owned(),
                versions: vec!["v1".to_owned()],
                storage: "v1".to_owned(),
                plural: plural.to_owned(),
                singular: kind.to_ascii_lowercase(),
                kind: kind.to_owned(),
                namespaced: flags & NAMESPACED != 0,
                verbs: if flags & REVIEW != 0 {
                    CREATE_ONLY
                } else {
                    ALL
                },
                status: flags & STATUS != 0,
                returns_deleted: flags & RETURNS_DELETED != 0,
                fields: strings(fields),
                short_names: strings(short_names),
                custom: false,
            },
        )
        .collect()
}
