//! The names a meshed process goes by in telemetry: its pod, its workload (the Deployment that
//! owns the pod) and its namespace, as Kubernetes would name them.

use std::fmt;

/// A meshed process's names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Workload {
    pub namespace: String,
    /// The workload (Deployment) name.
    pub name: String,
    pub pod: String,
}

/// Why a name cannot be a Kubernetes object name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{field} {value:?} is not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', at most 253)"
)]
pub struct WorkloadError {
    pub field: &'static str,
    pub value: String,
}

/// The alphabet Kubernetes draws generated name parts from (no vowels, no look-alikes).
const GENERATED: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

impl Workload {
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        pod: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            pod: pod.into(),
        }
    }

    /// The Deployment name of a pod named as a ReplicaSet names its pods,
    /// `<deployment>-<pod-template-hash>-<suffix>`: the hash is 1-10 characters and the suffix
    /// 5, both from Kubernetes' generated-name alphabet. Any other name is its own workload.
    pub fn name_of_pod(pod: &str) -> &str {
        let generated = |part: &str, len: std::ops::RangeInclusive<usize>| {
            len.contains(&part.len()) && part.bytes().all(|b| GENERATED.contains(&b))
        };
        let mut parts = pod.rsplitn(3, '-');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(suffix), Some(hash), Some(deployment))
                if !deployment.is_empty()
                    && generated(suffix, 5..=5)
                    && generated(hash, 1..=10) =>
            {
                deployment
            }
            _ => pod,
        }
    }

    /// Each name is a DNS-1123 subdomain; the namespace and the workload name are also labels
    /// (no dots, at most 63), as Kubernetes requires of namespaces and Deployment names that
    /// Services select.
    pub fn check(&self) -> Result<(), WorkloadError> {
        let error = |field, value: &str| WorkloadError {
            field,
            value: value.to_owned(),
        };
        for (field, value, max) in [
            ("namespace", &self.namespace, 63),
            ("workload name", &self.name, 63),
            ("pod name", &self.pod, 253),
        ] {
            if !dns_subdomain(value, max) || (max == 63 && value.contains('.')) {
                return Err(error(field, value));
            }
        }
        Ok(())
    }
}

fn dns_subdomain(value: &str, max: usize) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= max
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'.')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} (pod {})", self.namespace, self.name, self.pod)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_set_pod_is_named_after_its_deployment() {
        assert_eq!(
            Workload::name_of_pod("bookstore-v1-5d8f7c9b4-x2x7q"),
            "bookstore-v1"
        );
        assert_eq!(
            Workload::name_of_pod("web-7c4-abcde"),
            "web-7c4-abcde",
            "vowels are never generated"
        );
        assert_eq!(
            Workload::name_of_pod("web-75675f5897-7ci7o"),
            "web-75675f5897-7ci7o"
        );
        assert_eq!(Workload::name_of_pod("web-75675f5897-7cz7x"), "web");
        assert_eq!(Workload::name_of_pod("bookbuyer"), "bookbuyer");
        assert_eq!(Workload::name_of_pod("my-host"), "my-host");
        assert_eq!(
            Workload::name_of_pod("-5d8f7c9b4-x2x7q"),
            "-5d8f7c9b4-x2x7q"
        );
    }

    #[test]
    fn names_must_be_what_kubernetes_accepts() {
        assert_eq!(
            Workload::new("bookstore", "bookstore-v1", "bookstore-v1-0").check(),
            Ok(())
        );
        let bad = Workload::new("bookstore", "Bookstore", "p").check();
        assert_eq!(bad.map_err(|e| e.field), Err("workload name"));
        let dotted = Workload::new("a.b", "w", "p").check();
        assert_eq!(dotted.map_err(|e| e.field), Err("namespace"));
        let long = Workload::new("a", "w", "p".repeat(254)).check();
        assert_eq!(long.map_err(|e| e.field), Err("pod name"));
        assert!(Workload::new("a", "w", "host.example").check().is_ok());
    }
}
