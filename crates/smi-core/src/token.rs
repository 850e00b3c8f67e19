//! The join-token format: `smi1.<claims>.<mac>`, both parts unpadded base64url, the claims JSON.
//!
//! Only the control service can check the MAC (it holds the key); a workload reads the claims
//! without checking them, to learn its identity and the control's CA, which it then pins for
//! the first TLS connection. Parsing is strict and never panics on hostile input.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::identity::{ServiceAccount, ServiceRef};

pub const PREFIX: &str = "smi1";

/// What a join token grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The identity, `namespace/name`.
    pub sub: String,
    /// Services the holder may register endpoints for, `namespace/name`.
    #[serde(default)]
    pub serves: Vec<String>,
    pub iat: u64,
    pub exp: u64,
    pub trust_domain: String,
    /// Which control service issued it (a fingerprint of its token key).
    pub control: String,
    /// The control's trust bundle, DER base64url: pinned by the workload on first contact.
    pub ca: Vec<String>,
    /// Unique id: audit logs name it, the control counts its uses by it, and `smictl revoke
    /// --token` revokes it.
    pub jti: String,
    /// How many enrollments (certificates) the token buys. Tokens made before use counts
    /// existed have none: one.
    #[serde(default = "single_use")]
    pub uses: u32,
}

fn single_use() -> u32 {
    1
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a join token (expected smi1.<claims>.<mac>)")]
    Format,
    #[error("join token claims are unreadable: {0}")]
    Claims(String),
}

impl Claims {
    pub fn identity(&self) -> Result<ServiceAccount, TokenError> {
        self.sub
            .parse()
            .map_err(|e: crate::IdentityError| TokenError::Claims(format!("sub: {e}")))
    }

    pub fn services(&self) -> Result<Vec<ServiceRef>, TokenError> {
        self.serves
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|e: crate::IdentityError| TokenError::Claims(format!("serves: {e}")))
            })
            .collect()
    }

    /// The pinned CA certificates, DER.
    pub fn ca_der(&self) -> Result<Vec<Vec<u8>>, TokenError> {
        self.ca
            .iter()
            .map(|c| {
                URL_SAFE_NO_PAD
                    .decode(c)
                    .map_err(|e| TokenError::Claims(format!("ca: {e}")))
            })
            .collect()
    }

    /// `smi1.<claims>`: the bytes the MAC covers.
    pub fn signing_input(&self) -> String {
        // Serializing a struct of strings and integers cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("{PREFIX}.{}", URL_SAFE_NO_PAD.encode(json))
    }
}

/// Appends a MAC to a signing input.
pub fn assemble(signing_input: &str, mac: &[u8]) -> String {
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac))
}

/// A token taken apart, nothing verified yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub claims: Claims,
    pub signing_input: &'a str,
    pub mac: Vec<u8>,
}

pub fn parse(token: &str) -> Result<Parsed<'_>, TokenError> {
    let token = token.trim();
    if token.len() > 64 * 1024 {
        return Err(TokenError::Format);
    }
    let (signing_input, mac) = token.rsplit_once('.').ok_or(TokenError::Format)?;
    let (prefix, claims) = signing_input.split_once('.').ok_or(TokenError::Format)?;
    if prefix != PREFIX || claims.contains('.') {
        return Err(TokenError::Format);
    }
    let mac = URL_SAFE_NO_PAD
        .decode(mac)
        .map_err(|_| TokenError::Format)?;
    let json = URL_SAFE_NO_PAD
        .decode(claims)
        .map_err(|_| TokenError::Format)?;
    let claims: Claims =
        serde_json::from_slice(&json).map_err(|e| TokenError::Claims(e.to_string()))?;
    Ok(Parsed {
        claims,
        signing_input,
        mac,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            sub: "bookstore/bookbuyer".into(),
            serves: vec!["bookstore/bookbuyer".into()],
            iat: 1,
            exp: 2,
            trust_domain: "cluster.local".into(),
            control: "abcd".into(),
            ca: vec![URL_SAFE_NO_PAD.encode([1u8, 2, 3])],
            jti: "x".into(),
            uses: 3,
        }
    }

    #[test]
    fn round_trips() {
        let c = claims();
        let token = assemble(&c.signing_input(), &[9, 9, 9]);
        let parsed = parse(&token).unwrap();
        assert_eq!(parsed.claims, c);
        assert_eq!(parsed.mac, vec![9, 9, 9]);
        assert_eq!(parsed.claims.ca_der().unwrap(), vec![vec![1, 2, 3]]);
        assert_eq!(
            parsed.claims.identity().unwrap(),
            ServiceAccount::new("bookstore", "bookbuyer")
        );
    }

    #[test]
    fn a_token_without_a_use_count_is_single_use() {
        let mut json = serde_json::to_value(claims()).unwrap();
        json.as_object_mut().unwrap().remove("uses");
        let old = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json).unwrap());
        let token = format!("{PREFIX}.{old}.AA");
        assert_eq!(parse(&token).unwrap().claims.uses, 1);
    }

    #[test]
    fn refuses_other_shapes() {
        for bad in [
            "",
            "smi1",
            "smi1.a",
            "smi2.e30.AA",
            "smi1.a.b.c",
            "smi1.!!.AA",
            "smi1.e30.AA",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
