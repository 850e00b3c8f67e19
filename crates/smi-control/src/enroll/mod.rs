//! Enrollment: the control's own [`Authenticator`]s. [`JoinTokens`] for first contact, and
//! [`CertificateRenewal`] for a workload that presents its current, TLS-verified certificate,
//! within the maximum lifetime of its chain. Each claims only the credentials it recognizes
//! (see [`crate::traits::Authenticator`]); Kubernetes ServiceAccount tokens join the chain next
//! to them.
//!
//! Authentication says who the caller is; whether that identity or token is revoked, and whether
//! a token has uses left, is decided next, by [`crate::revocation`].

mod grant;
mod join_tokens;
mod renewal;

pub use grant::{Grant, Refusal, TokenUse};
pub use join_tokens::{JoinTokens, NewToken, is_join_token};
pub use renewal::CertificateRenewal;
// The trait and the chain live with the other parts' traits; these are their old paths.
pub use crate::traits::{Authenticator, Authenticators, Credential};

use std::time::{SystemTime, UNIX_EPOCH};

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
