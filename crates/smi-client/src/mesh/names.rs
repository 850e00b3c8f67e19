//! This workload's names for telemetry: its pod, its workload (Deployment) and its namespace,
//! as configured or by default (the pod is the host, the workload the pod without Kubernetes'
//! `-<pod-template-hash>-<suffix>`, the namespace the identity's).

use rustls::pki_types::CertificateDer;
use smi_core::ServiceRef;
use smi_core::telemetry::Workload;

use super::{MeshConfig, MeshError};
use crate::control::Credentials;

/// The pod and workload names `config` asks for, defaults filled in. Names given explicitly
/// must be valid Kubernetes names (an error says which is not); defaults are made valid.
pub(super) fn resolve(config: &MeshConfig) -> Result<(String, String), MeshError> {
    let pod = match &config.pod_name {
        Some(pod) => pod.clone(),
        None => subdomain(&host_name()),
    };
    let workload = match &config.workload_name {
        Some(name) => name.clone(),
        None => label(Workload::name_of_pod(&pod)),
    };
    let namespace = config.namespace.as_deref().unwrap_or("default");
    Workload::new(namespace, &workload, &pod).check()?;
    Ok((pod, workload))
}

/// The host name: the kernel's, else `HOSTNAME`, else `localhost`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// `raw` as a DNS-1123 label (what Kubernetes accepts as a Deployment name): lower case,
/// anything else than letters, digits and '-' replaced by '-', at most 63 characters,
/// starting and ending with a letter or digit.
fn label(raw: &str) -> String {
    or_localhost(clean(raw))
}

/// `raw` as a DNS-1123 subdomain (what Kubernetes accepts as a pod name): labels made valid,
/// empty ones dropped, at most 253 characters.
fn subdomain(raw: &str) -> String {
    let mut name = raw
        .split('.')
        .map(clean)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(".");
    name.truncate(253);
    or_localhost(name.trim_end_matches(['-', '.']).to_owned())
}

/// One label's characters made valid; possibly empty.
fn clean(raw: &str) -> String {
    let mut name: String = raw
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    name.truncate(63);
    name.trim_matches('-').to_owned()
}

fn or_localhost(name: String) -> String {
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name
    }
}

/// The services a certificate lets its holder serve (its DNS SANs).
pub(super) fn serves(credentials: &Credentials) -> Vec<ServiceRef> {
    credentials
        .chain_der()
        .first()
        .and_then(|leaf| smi_tls::peer_identity(&CertificateDer::from(leaf.as_slice())).ok())
        .map(|identity| identity.serves)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::ControlAddr;

    fn config() -> MeshConfig {
        MeshConfig::new(ControlAddr::parse("127.0.0.1:1").unwrap(), "token")
    }

    #[test]
    fn any_host_name_makes_valid_names() {
        for (host, pod, workload) in [
            ("My_Host", "my-host", "my-host"),
            ("laptop.local", "laptop.local", "laptop-local"),
            (
                "bookstore-v1-5d8f7c9b4-x2x7q",
                "bookstore-v1-5d8f7c9b4-x2x7q",
                "bookstore-v1",
            ),
            ("-weird..name-", "weird.name", "weird-name"),
            ("___", "localhost", "localhost"),
            ("", "localhost", "localhost"),
        ] {
            let made = subdomain(host);
            assert_eq!(made, pod, "{host:?}");
            assert_eq!(label(Workload::name_of_pod(&made)), workload, "{host:?}");
            assert!(
                Workload::new("ns", label(Workload::name_of_pod(&made)), &made)
                    .check()
                    .is_ok()
            );
        }
        let long = "a".repeat(300);
        assert_eq!(subdomain(&long).len(), 63, "each label is at most 63");
        assert_eq!(label(&long).len(), 63);
    }

    #[test]
    fn names_default_from_the_host_and_explicit_ones_must_be_valid() {
        let (pod, workload) = resolve(&config()).unwrap();
        assert_eq!(pod, subdomain(&host_name()));
        assert_eq!(workload, label(Workload::name_of_pod(&pod)));

        let given = config()
            .pod_name("web-75675f5897-7cz7x")
            .workload_name("web");
        assert_eq!(
            resolve(&given).map_err(|e| e.to_string()),
            Ok(("web-75675f5897-7cz7x".to_owned(), "web".to_owned()))
        );
        let derived = config().pod_name("web-75675f5897-7cz7x");
        assert_eq!(
            resolve(&derived).map(|(_, w)| w).map_err(|e| e.to_string()),
            Ok("web".to_owned())
        );
        let bad = config().workload_name("Web");
        let error = resolve(&bad).map(|_| ()).map_err(|e| e.to_string());
        assert!(
            error.as_ref().is_err_and(|e| e.contains("workload name")),
            "{error:?}"
        );
        let bad = config().namespace("Shop");
        assert!(resolve(&bad).is_err());
    }
}
