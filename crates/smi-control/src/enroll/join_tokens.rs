//! [`JoinTokens`]: first contact. A token made by `smictl token create`, signed with HMAC-SHA256
//! under the control's token key: verifiable without a database, and valid across restarts
//! because the key is kept by the [`StateStore`](crate::traits::StateStore).

use std::time::{Duration, SystemTime};

use aws_lc_rs::{digest, hmac};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::future::BoxFuture;
use rustls::pki_types::CertificateDer;
use smi_core::token::{self, Claims};
use smi_core::{ServiceAccount, ServiceRef};

use super::{Grant, Refusal, TokenUse, hex, unix_now};
use crate::traits::{Authenticator, Credential};

/// A join token as made, with its id (for `smictl revoke --token`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewToken {
    pub token: String,
    pub jti: String,
}

/// Makes and verifies join tokens.
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
            workload: None,
            names_proven: false,
        })
    }
}

/// Whether `text` has the form of a join token (`smi1.`...): the format's own prefix, so that
/// another kind of token (a Kubernetes ServiceAccount JWT) is left to its authenticator.
pub fn is_join_token(text: &str) -> bool {
    text.trim()
        .strip_prefix(token::PREFIX)
        .is_some_and(|rest| rest.starts_with('.'))
}

impl Authenticator for JoinTokens {
    fn accepts(&self) -> &'static str {
        "a join token (smi1.<claims>.<mac>)"
    }

    fn recognizes(&self, credential: &Credential<'_>) -> bool {
        credential.token.is_some_and(is_join_token)
    }

    fn authenticate<'a>(
        &'a self,
        credential: &'a Credential<'a>,
    ) -> BoxFuture<'a, Result<Grant, Refusal>> {
        let verified = self.verify(credential.token.unwrap_or_default());
        Box::pin(std::future::ready(verified))
    }
}
