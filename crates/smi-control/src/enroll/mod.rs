//! Enrollment: how a workload proves who it is before it gets a certificate.
//!
//! [`Authenticator`] is the extension point (Kubernetes ServiceAccount tokens can be added next to
//! these). Two ship: [`JoinTokens`] for first contact, and [`CertificateRenewal`] for a workload
//! that presents its current, TLS-verified certificate, within the maximum lifetime of its chain.
//!
//! Authentication says who the caller is; whether that identity or token is revoked, and whether
//! a token has uses left, is decided next, by [`crate::revocation`].

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::{digest, hmac};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls::pki_types::CertificateDer;
use smi_core::token::{self, Claims, TokenError};
use smi_core::{ServiceAccount, ServiceRef};

use smi_tls::peer_identity;

use crate::ca::first_enrolled;

/// What a credential entitles its holder to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub identity: ServiceAccount,
    /// Services it may register endpoints for.
    pub serves: Vec<ServiceRef>,
    /// How it authenticated, for logs: `join token <jti>`, `certificate`.
    pub via: String,
    /// When the chain of certificates this grant continues was first enrolled: now for a join
    /// token, the presented certificate's for a renewal. The new certificate carries it on.
    pub first_enrolled: SystemTime,
    /// The join token it was bought with, if any: its uses are counted.
    pub token: Option<TokenUse>,
}

/// A join token being spent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenUse {
    pub jti: String,
    /// How many certificates the token buys in all.
    pub uses: u32,
    /// When it expires (Unix seconds): its count can be forgotten then.
    pub expires_unix: u64,
}

/// A join token as made, with its id (for `smictl revoke --token`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewToken {
    pub token: String,
    pub jti: String,
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
    #[error(
        "this certificate's chain was first enrolled {age_secs} s ago, and chains renew for at most {max_secs} s: re-enroll with a new join token"
    )]
    ChainTooOld { age_secs: u64, max_secs: u64 },
    #[error("identity {identity} is revoked{}: it gets no certificate", reason_suffix(.reason))]
    Revoked {
        identity: String,
        reason: Option<String>,
    },
    #[error("join token {jti} is revoked{}", reason_suffix(.reason))]
    TokenRevoked { jti: String, reason: Option<String> },
    #[error(
        "join token {jti} was already used {used} time(s), all it allows: create a new one with `smictl token create`"
    )]
    TokenUsedUp { jti: String, used: u32 },
}

fn reason_suffix(reason: &Option<String>) -> String {
    reason
        .as_deref()
        .map_or_else(String::new, |r| format!(" ({r:?})"))
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

    /// A single-use token for `identity`, pinning `bundle` as the control's CA.
    pub fn create(
        &self,
        identity: &ServiceAccount,
        serves: &[ServiceRef],
        ttl: Duration,
        bundle: &[CertificateDer<'_>],
    ) -> String {
        self.create_with_uses(identity, serves, ttl, bundle, 1)
            .token
    }

    /// A token for `identity` that buys `uses` certificates, pinning `bundle` as the control's
    /// CA; with its id.
    pub fn create_with_uses(
        &self,
        identity: &ServiceAccount,
        serves: &[ServiceRef],
        ttl: Duration,
        bundle: &[CertificateDer<'_>],
        uses: u32,
    ) -> NewToken {
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
            uses,
        };
        let input = claims.signing_input();
        let tag = hmac::sign(&self.key, input.as_bytes());
        NewToken {
            token: token::assemble(&input, tag.as_ref()),
            jti: claims.jti,
        }
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
            first_enrolled: SystemTime::now(),
            token: Some(TokenUse {
                jti: claims.jti.clone(),
                uses: claims.uses,
                expires_unix: claims.exp,
            }),
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
/// trust bundle gets a new one for the same identity and services, as long as its chain was
/// first enrolled less than `max_chain_lifetime` ago.
///
/// The handshake verifies against the current bundle: a certificate of a retired root is
/// refused there. During a rotation's overlap a certificate of the retiring root renews (into
/// one of the new root): that is how workloads migrate.
#[derive(Debug)]
pub struct CertificateRenewal {
    pub trust_domain: String,
    /// How long a chain of renewals may go on after its first enrollment.
    pub max_chain_lifetime: Duration,
}

impl Authenticator for CertificateRenewal {
    fn authenticate(&self, credential: &Credential<'_>) -> Option<Result<Grant, Refusal>> {
        let leaf = credential.peer_certificates?.first()?;
        Some(
            peer_identity(leaf)
                .map_err(|e| Refusal::BadCertificate(e.to_string()))
                .and_then(|peer| {
                    if peer.spiffe_id.trust_domain != self.trust_domain {
                        return Err(Refusal::ForeignTrustDomain {
                            theirs: peer.spiffe_id.trust_domain,
                            ours: self.trust_domain.clone(),
                        });
                    }
                    let first = first_enrolled(leaf).map_err(Refusal::BadCertificate)?;
                    let age = SystemTime::now()
                        .duration_since(first)
                        .unwrap_or(Duration::ZERO);
                    if age > self.max_chain_lifetime {
                        return Err(Refusal::ChainTooOld {
                            age_secs: age.as_secs(),
                            max_secs: self.max_chain_lifetime.as_secs(),
                        });
                    }
                    Ok(Grant {
                        identity: peer.spiffe_id.account,
                        serves: peer.serves,
                        via: "certificate".to_owned(),
                        first_enrolled: first,
                        token: None,
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
mod tests;
