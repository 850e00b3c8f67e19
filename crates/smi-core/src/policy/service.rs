//! Service names as clients write them: `svc` (with a default namespace), `svc.ns`,
//! `svc.ns.svc`, `svc.ns.svc.<cluster-domain>`, each optionally with `:port` and a trailing dot.

use std::fmt;

/// A Kubernetes Service, borrowed from the text it was parsed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServiceName<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("{0:?} has no namespace (write svc.ns, or give a default namespace)")]
    NoNamespace(String),
    #[error("{0:?} is not a mesh service name (svc.ns[.svc[.{1}]][:port])")]
    NotAService(String, String),
}

impl fmt::Display for ServiceName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl<'a> ServiceName<'a> {
    /// Parses an authority or host. `ns/name` is accepted too, for command lines.
    pub fn parse(
        authority: &'a str,
        default_namespace: Option<&'a str>,
        cluster_domain: &str,
    ) -> Result<Self, HostError> {
        let not_a_service =
            || HostError::NotAService(authority.to_owned(), cluster_domain.to_owned());
        if let Some((namespace, name)) = authority.split_once('/') {
            if namespace.is_empty() || name.is_empty() || name.contains('/') {
                return Err(not_a_service());
            }
            return Ok(Self { namespace, name });
        }
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => authority,
        };
        let host = host.strip_suffix('.').unwrap_or(host);
        let (name, rest) = host.split_once('.').unwrap_or((host, ""));
        if name.is_empty() {
            return Err(not_a_service());
        }
        if rest.is_empty() {
            let namespace =
                default_namespace.ok_or_else(|| HostError::NoNamespace(authority.to_owned()))?;
            return Ok(Self { namespace, name });
        }
        let (namespace, suffix) = rest.split_once('.').unwrap_or((rest, ""));
        let suffix_ok = suffix.is_empty()
            || suffix == "svc"
            || suffix
                .strip_prefix("svc.")
                .is_some_and(|domain| domain.eq_ignore_ascii_case(cluster_domain));
        if namespace.is_empty() || !suffix_ok {
            return Err(not_a_service());
        }
        Ok(Self { namespace, name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<(String, String), HostError> {
        ServiceName::parse(s, Some("dflt"), "cluster.local")
            .map(|n| (n.namespace.to_owned(), n.name.to_owned()))
    }

    #[test]
    fn accepts_every_written_form() {
        let want = Ok(("bookstore".to_owned(), "books".to_owned()));
        for s in [
            "books.bookstore",
            "books.bookstore:8080",
            "books.bookstore.svc",
            "books.bookstore.svc.cluster.local",
            "books.bookstore.svc.cluster.local.",
            "books.bookstore.svc.cluster.local.:9091",
            "bookstore/books",
        ] {
            assert_eq!(parse(s), want, "{s}");
        }
        assert_eq!(parse("books:80"), Ok(("dflt".into(), "books".into())));
    }

    #[test]
    fn refuses_other_hosts() {
        for s in [
            "books.bookstore.example.com",
            "books.bookstore.svc.other.domain",
            ".x",
            "a/b/c",
            "/b",
        ] {
            assert!(parse(s).is_err(), "{s}");
        }
        assert!(matches!(
            ServiceName::parse("books", None, "cluster.local"),
            Err(HostError::NoNamespace(_))
        ));
    }
}
