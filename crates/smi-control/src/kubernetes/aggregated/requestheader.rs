//! Request-header authentication (Kubernetes' "authenticating proxy"), as k8s.io/apiserver's
//! `headerrequest` and `x509` authenticators do it: the user named in headers is believed
//! only from a client whose certificate verifies against the front-proxy CA and whose CN is
//! allowed, both as kube-apiserver publishes them in the ConfigMap
//! `kube-system/extension-apiserver-authentication`.
//!
//! - user: the first username header with a non-empty (first) value;
//! - groups: every non-empty value of every group header, each value one group (no comma
//!   splitting), then `system:authenticated` (k8s.io/apiserver's `AuthenticatedGroupAdder`);
//! - extra: every header starting with an extra prefix, keyed by the rest of its name,
//!   lower-cased and percent-decoded, one value per header value.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName};
use k8s_openapi::api::core::v1::ConfigMap;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Where kube-apiserver publishes how it authenticates to extension API servers.
pub const CONFIG_MAP_NAMESPACE: &str = "kube-system";
pub const CONFIG_MAP_NAME: &str = "extension-apiserver-authentication";

/// The group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";
const UNAUTHENTICATED: &str = "system:unauthenticated";

/// The front proxy as the ConfigMap describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHeaderConfig {
    /// `requestheader-client-ca-file`: the CAs the proxy's client certificate chains to.
    pub client_ca: Arc<[CertificateDer<'static>]>,
    /// `requestheader-allowed-names`: the CNs a proxy certificate may have; empty: any.
    pub allowed_names: Arc<[String]>,
    /// `requestheader-username-headers`, in order.
    pub username_headers: Arc<[HeaderName]>,
    /// `requestheader-uid-headers` (Kubernetes 1.32 and later), in order.
    pub uid_headers: Arc<[HeaderName]>,
    /// `requestheader-group-headers`.
    pub group_headers: Arc<[HeaderName]>,
    /// `requestheader-extra-headers-prefix`, lower-cased.
    pub extra_prefixes: Arc<[String]>,
}

/// A ConfigMap that does not describe a front proxy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ConfigMap {CONFIG_MAP_NAMESPACE}/{CONFIG_MAP_NAME}: {key}: {message}")]
pub struct ConfigError {
    pub key: &'static str,
    pub message: String,
}

/// Who a request is from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// Why a request has no user (each is a 401).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unauthenticated {
    #[error("no client certificate (only the front proxy's requests are served)")]
    NoCertificate,
    #[error("no front-proxy CA: {CONFIG_MAP_NAMESPACE}/{CONFIG_MAP_NAME} is gone")]
    NotConfigured,
    #[error("the client certificate does not verify against the front-proxy CA: {0}")]
    Untrusted(String),
    #[error("the client certificate's CN {0:?} is not in requestheader-allowed-names")]
    NameNotAllowed(String),
    #[error("no username header ({0}) with a value")]
    NoUser(String),
}

// === impl RequestHeaderConfig ===

impl TryFrom<&ConfigMap> for RequestHeaderConfig {
    type Error = ConfigError;

    fn try_from(map: &ConfigMap) -> Result<Self, ConfigError> {
        let empty = BTreeMap::new();
        let data = map.data.as_ref().unwrap_or(&empty);
        let key = "requestheader-client-ca-file";
        let invalid = |key, message: String| ConfigError { key, message };
        let pem = data.get(key).map(String::as_str).unwrap_or("");
        if pem.trim().is_empty() {
            let why = "missing: is the aggregation layer enabled (kube-apiserver --requestheader-client-ca-file)?";
            return Err(invalid(key, why.to_owned()));
        }
        let client_ca = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(key, e.to_string()))?;
        if client_ca.is_empty() {
            return Err(invalid(key, "no certificate in it".to_owned()));
        }
        let headers = |key: &'static str| -> Result<Arc<[HeaderName]>, ConfigError> {
            strings(data, key)?
                .iter()
                .map(|h| {
                    HeaderName::from_bytes(h.as_bytes())
                        .map_err(|_| invalid(key, format!("{h:?} is not a header name")))
                })
                .collect()
        };
        let extra_prefixes = strings(data, "requestheader-extra-headers-prefix")?
            .into_iter()
            .map(|p| p.to_ascii_lowercase())
            .collect();
        Ok(RequestHeaderConfig {
            client_ca: client_ca.into(),
            allowed_names: strings(data, "requestheader-allowed-names")?.into(),
            username_headers: headers("requestheader-username-headers")?,
            uid_headers: headers("requestheader-uid-headers")?,
            group_headers: headers("requestheader-group-headers")?,
            extra_prefixes,
        })
    }
}

/// A JSON list of strings (absent or empty: none), each trimmed; an empty one is refused, as
/// kube-apiserver refuses it.
fn strings(data: &BTreeMap<String, String>, key: &'static str) -> Result<Vec<String>, ConfigError> {
    let Some(text) = data.get(key).filter(|t| !t.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    let list: Vec<String> = serde_json::from_str(text).map_err(|e| ConfigError {
        key,
        message: format!("not a JSON list of strings: {e}"),
    })?;
    list.into_iter()
        .map(|s| {
            let trimmed = s.trim();
            if trimmed.is_empty() {
                return Err(ConfigError {
                    key,
                    message: format!("empty entry {s:?}"),
                });
            }
            Ok(trimmed.to_owned())
        })
        .collect()
}

/// The front proxy in force: its config and a verifier for its CA, or nothing (every
/// request unauthenticated). `generation` tells one published value from the next.
#[derive(Debug)]
pub struct FrontProxy {
    trusted: Option<(RequestHeaderConfig, Arc<dyn ClientCertVerifier>)>,
    pub generation: u64,
}

// === impl FrontProxy ===

impl FrontProxy {
    /// Trusting `config`'s CA.
    pub fn new(config: RequestHeaderConfig, generation: u64) -> Result<FrontProxy, ConfigError> {
        let invalid = |message: String| ConfigError {
            key: "requestheader-client-ca-file",
            message,
        };
        let mut roots = RootCertStore::empty();
        for ca in config.client_ca.iter() {
            roots.add(ca.clone()).map_err(|e| invalid(e.to_string()))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(FrontProxy {
            trusted: Some((config, verifier)),
            generation,
        })
    }

    /// Trusting no one (the ConfigMap was deleted).
    pub fn closed(generation: u64) -> FrontProxy {
        FrontProxy {
            trusted: None,
            generation,
        }
    }

    pub fn config(&self) -> Option<&RequestHeaderConfig> {
        self.trusted.as_ref().map(|(config, _)| config)
    }

    /// Whether `chain` (leaf first) is a front proxy's: it verifies against the CA (for
    /// client authentication, now) and its leaf's CN is allowed.
    pub fn verify(&self, chain: &[CertificateDer<'static>]) -> Result<(), Unauthenticated> {
        let Some((config, verifier)) = &self.trusted else {
            return Err(Unauthenticated::NotConfigured);
        };
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(Unauthenticated::NoCertificate);
        };
        verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map_err(|e| Unauthenticated::Untrusted(e.to_string()))?;
        if config.allowed_names.is_empty() {
            return Ok(());
        }
        let cn = common_name(leaf).unwrap_or_default();
        if config.allowed_names.contains(&cn) {
            Ok(())
        } else {
            Err(Unauthenticated::NameNotAllowed(cn))
        }
    }

    /// The user the headers name, from a client whose certificate [`FrontProxy::verify`]
    /// passed.
    pub fn user(&self, headers: &HeaderMap) -> Result<User, Unauthenticated> {
        let Some((config, _)) = &self.trusted else {
            return Err(Unauthenticated::NotConfigured);
        };
        let first = |names: &[HeaderName]| {
            names.iter().find_map(|h| {
                let value = headers.get(h)?.as_bytes();
                (!value.is_empty()).then(|| String::from_utf8_lossy(value).into_owned())
            })
        };
        let Some(name) = first(&config.username_headers) else {
            let names: Vec<&str> = config
                .username_headers
                .iter()
                .map(HeaderName::as_str)
                .collect();
            return Err(Unauthenticated::NoUser(names.join(", ")));
        };
        let mut groups: Vec<String> = config
            .group_headers
            .iter()
            .flat_map(|h| headers.get_all(h))
            .filter(|v| !v.is_empty())
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if !groups
            .iter()
            .any(|g| g == AUTHENTICATED || g == UNAUTHENTICATED)
        {
            groups.push(AUTHENTICATED.to_owned());
        }
        let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for prefix in config.extra_prefixes.iter() {
            for (header, value) in headers {
                if let Some(key) = header.as_str().strip_prefix(prefix.as_str()) {
                    let key = percent_decoded(key);
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    extra.entry(key).or_default().push(value);
                }
            }
        }
        Ok(User {
            name,
            uid: first(&config.uid_headers).unwrap_or_default(),
            groups,
            extra,
        })
    }

    /// Removes the headers that name a user, so that nothing after authentication reads them.
    pub fn strip(&self, headers: &mut HeaderMap) {
        let Some((config, _)) = &self.trusted else {
            return;
        };
        let named = config
            .username_headers
            .iter()
            .chain(config.uid_headers.iter())
            .chain(config.group_headers.iter());
        for header in named {
            headers.remove(header);
        }
        let extra: Vec<HeaderName> = headers
            .keys()
            .filter(|h| {
                let h = h.as_str();
                config
                    .extra_prefixes
                    .iter()
                    .any(|p| h.starts_with(p.as_str()))
            })
            .cloned()
            .collect();
        for header in extra {
            headers.remove(&header);
        }
    }
}

/// The leaf's subject CN (the last one, as Go's `pkix.Name` keeps it).
fn common_name(leaf: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(leaf.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().last()?;
    cn.as_str().ok().map(str::to_owned)
}

/// `key` percent-decoded; as it was when it does not decode (Go's `unescapeExtraKey`).
fn percent_decoded(key: &str) -> String {
    super::attributes::decode(key).unwrap_or_else(|_| key.to_owned())
}

#[cfg(test)]
mod tests;
