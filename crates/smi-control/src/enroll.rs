//! Enrollment: how a workload proves who it is before it gets a certificate.
//!
//! [`Authenticator`] is the extension point (Kubernetes ServiceAccount tokens can be added next to
//! these). Two ship: [`JoinTokens`] for first contact, and [`CertificateRenewal`] for a workload
//! that presents its current, TLS-verified certificate.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::{digest, hmac};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls::pki_types::CertificateDer;
use smi_core::token::{self, Claims, TokenError};
use smi_core::{ServiceAccount, ServiceRef};

use crate::ca::peer_identity;

/// What a credential entitles its holder to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub identity: ServiceAccount,
    /// Services it may register endpoints for.
    pub serves: Vec<ServiceRef>,
    /// How it authenticated, for logs: `join token <jti>`, `certificate`.
    pub via: String,
}

/// Why a credential was refused. Each message says what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no credential: send a join token, or present your workload certificate")]
    NoCredential,
    #[error("{0}")]
    Malformed(#[from] TokenError),
    #[error("the token was issued by another control service ({theirs}); this one is {ours}")]
    ForeignControl { theirs: String, ours: String },
    #[error("the token's signature does not verify: it was altered or forged")]
    BadSignature,
    #[error("the token expired {0} s ago; create a new one with `smictl token create`")]
    Expired(u64),
    #[error("the credential is for trust domain {theirs:?}; this control serves {ours:?}")]
    ForeignTrustDomain { theirs: String, ours: String },
    #[error("the client certificate cannot be used: {0}")]
    BadCertificate(String),
}

/// The credential a request carries.
#[derive(Clone, Copy, Debug, Default)]
pub struct Credential<'a> {
    pub token: Option<&'a str>,
    /// The TLS client chain, already verified against the trust bundle by the handshake.
    pub peer_certificates: Option<&'a [CertificateDer<'static>]>,
}

pub trait Authenticator: Send + Sync + 'static {
    /// `None` when this authenticator does not handle this kind of credential.
    fn authenticate(&self, credential: &Credential<'_>) -> Option<Result<Grant, Refusal>>;
}

/// Tries each authenticator in order; the first that handles the credential decides.
#[derive(Clone, Default)]
pub struct Authenticators(Vec<Arc<dyn Authenticator>>);

impl std::fmt::Debug for Authenticators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Authenticators({})", self.0.len())
    }
}

impl Authenticators {
    #[must_use]
    pub fn with(mut self, authenticator: impl Authenticator) -> Self {
        self.0.push(Arc::new(authenticator));
        self
    }

    pub fn authenticate(&self, credential: &Credential<'_>) -> Result<Grant, Refusal> {
        self.0
            .iter()
            .find_map(|a| a.authenticate(credential))
            .unwrap_or(Err(Refusal::NoCredential))
    }
}

// === impl JoinTokens ===

/// Join tokens signed with HMAC-SHA256 under the control's token key: verifiable without a
/// database, and they survive restarts because the key is in the state directory.
#[derive(Debug)]
pub struct JoinTokens {
    key: hmac::Key,
    control_id: String,
    trust_domain: String,
}

impl JoinTokens {
    pub fn new(key: &[u8], trust_domain: &str) -> Self {
        let fingerprint = digest::digest(&digest::SHA256, key);
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            control_id: hex(&fingerprint.as_ref()[..6]),
            trust_domain: trust_domain.to_owned(),
        }
    }

    /// Which control this is, as tokens name it.
    pub fn control_id(&self) -> &str {
        &self.control_id
    }

    /// A token for `identity`, pinning `bundle` as the control's CA.
    pub fn create(
        &self,
        identity: &ServiceAccount,
        serves: &[ServiceRef],
        ttl: Duration,
        bundle: &[CertificateDer<'_>],
    ) -> String {
        let now = unix_now();
        let mut jti = [0u8; 9];
        let _ = aws_lc_rs::rand::fill(&mut jti);
        let claims = Claims {
            sub: identity.to_string(),
            serves: serves.iter().map(ToString::to_string).collect(),
            iat: now,
            exp: now + ttl.as_secs(),
            trust_domain: self.trust_domain.clone(),
            control: self.control_id.clone(),
            ca: bundle.iter().map(|c| URL_SAFE_NO_PAD.encode(c)).collect(),
            jti: hex(&jti),
        };
        let input = claims.signing_input();
        let tag = hmac::sign(&self.key, input.as_bytes());
        token::assemble(&input, tag.as_ref())
    }

    pub fn verify(&self, text: &str) -> Result<Grant, Refusal> {
        let parsed = token::parse(text)?;
        let claims = &parsed.claims;
        if claims.control != self.control_id {
            return Err(Refusal::ForeignControl {
                theirs: claims.control.clone(),
                ours: self.control_id.clone(),
            });
        }
        hmac::verify(&self.key, parsed.signing_input.as_bytes(), &parsed.mac)
            .map_err(|_| Refusal::BadSignature)?;
        let now = unix_now();
        if claims.exp <= now {
            return Err(Refusal::Expired(now - claims.exp));
        }
        if claims.trust_domain != self.trust_domain {
            return Err(Refusal::ForeignTrustDomain {
                theirs: claims.trust_domain.clone(),
                ours: self.trust_domain.clone(),
            });
        }
        Ok(Grant {
            identity: claims.identity()?,
            serves: claims.services()?,
            via: format!("join token {}", claims.jti),
        })
    }
}

impl Authenticator for JoinTokens {
    fn authenticate(&self, credential: &Credential<'_>) -> Option<Result<Grant, Refusal>> {
        credential
            .token
            .filter(|t| !t.is_empty())
            .map(|t| self.verify(t))
    }
}

// === impl CertificateRenewal ===

/// Renewal: a workload presenting a certificate that the TLS handshake verified against the
/// trust bundle gets a new one for the same identity and services.
#[derive(Debug)]
pub struct CertificateRenewal {
    pub trust_domain: String,
}

impl Authenticator for CertificateRenewal {
    fn authenticate(&self, credential: &Credential<'_>) -> Option<Result<Grant, Refusal>> {
        let leaf = credential.peer_certificates?.first()?;
        Some(
            peer_identity(leaf)
                .map_err(Refusal::BadCertificate)
                .and_then(|peer| {
                    if peer.spiffe_id.trust_domain != self.trust_domain {
                        return Err(Refusal::ForeignTrustDomain {
                            theirs: peer.spiffe_id.trust_domain,
                            ours: self.trust_domain.clone(),
                        });
                    }
                    Ok(Grant {
                        identity: peer.spiffe_id.account,
                        serves: peer.serves,
                        via: "certificate".to_owned(),
                    })
                }),
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(key: &[u8]) -> JoinTokens {
        JoinTokens::new(key, "cluster.local")
    }

    #[test]
    fn a_token_grants_exactly_its_identity_and_services() {
        let t = tokens(b"k1");
        let who = ServiceAccount::new("shop", "web");
        let serves = vec![ServiceRef::new("shop", "web")];
        let token = t.create(&who, &serves, Duration::from_secs(60), &[]);
        let grant = t.verify(&token).unwrap();
        assert_eq!(grant.identity, who);
        assert_eq!(grant.serves, serves);
    }

    #[test]
    fn a_token_from_another_control_is_refused() {
        let token = tokens(b"k1").create(
            &ServiceAccount::new("a", "b"),
            &[],
            Duration::from_secs(60),
            &[],
        );
        assert!(matches!(
            tokens(b"k2").verify(&token),
            Err(Refusal::ForeignControl { .. })
        ));
    }

    #[test]
    fn an_altered_token_is_refused() {
        let t = tokens(b"k1");
        let token = t.create(
            &ServiceAccount::new("a", "b"),
            &[],
            Duration::from_secs(60),
            &[],
        );
        // Re-sign the claims for another identity without the key: keep the old MAC.
        let parsed = token::parse(&token).unwrap();
        let mut claims = parsed.claims.clone();
        claims.sub = "kube-system/admin".into();
        let forged = token::assemble(&claims.signing_input(), &parsed.mac);
        assert_eq!(t.verify(&forged), Err(Refusal::BadSignature));
    }

    #[test]
    fn an_expired_token_is_refused() {
        let t = tokens(b"k1");
        let token = t.create(&ServiceAccount::new("a", "b"), &[], Duration::ZERO, &[]);
        assert!(matches!(t.verify(&token), Err(Refusal::Expired(_))));
    }

    #[test]
    fn no_credential_is_refused() {
        let auth = Authenticators::default()
            .with(tokens(b"k"))
            .with(CertificateRenewal {
                trust_domain: "cluster.local".into(),
            });
        assert_eq!(
            auth.authenticate(&Credential::default()),
            Err(Refusal::NoCredential)
        );
    }
}
