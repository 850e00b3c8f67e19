//! [`Authenticator`]: how a workload proves who it is before it gets a certificate. Join tokens
//! and certificate renewal today ([`crate::enroll`]); Kubernetes ServiceAccount tokens
//! (TokenReview) next.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use rustls::pki_types::CertificateDer;

use crate::enroll::{Grant, Refusal};

/// One way of authenticating a Certify call.
///
/// The contract:
/// - [`recognizes`](Self::recognizes) says, from the credential's form alone (no I/O), whether
///   it is of the kind this authenticator decides: a join token by its `smi1.` prefix, a
///   renewal by a verified client certificate and no token. An authenticator never claims a
///   credential it does not recognize, so that another one in the chain can.
/// - [`authenticate`](Self::authenticate) decides a recognized credential: a [`Grant`] (the
///   identity, the services it may serve, how it authenticated) or a [`Refusal`] that says what
///   to do about it. It may take time (a TokenReview is a call to the API server); enrollment
///   is not the per-request path.
/// - Whether the identity or token is revoked, and whether a token has uses left, is decided
///   after it, by [`crate::revocation`]: an authenticator says only who the caller is.
pub trait Authenticator: Send + Sync + 'static {
    /// What it accepts, for the refusal of a credential no authenticator recognizes
    /// (`a join token (smi1.<claims>.<mac>)`).
    fn accepts(&self) -> &'static str;

    fn recognizes(&self, credential: &Credential<'_>) -> bool;

    fn authenticate<'a>(
        &'a self,
        credential: &'a Credential<'a>,
    ) -> BoxFuture<'a, Result<Grant, Refusal>>;
}

/// The credential a Certify call carries.
#[derive(Clone, Copy, Debug, Default)]
pub struct Credential<'a> {
    /// The token sent, if any (an empty one is none).
    pub token: Option<&'a str>,
    /// The TLS client chain, already verified against the trust bundle by the handshake.
    pub peer_certificates: Option<&'a [CertificateDer<'static>]>,
}

impl Credential<'_> {
    /// The leaf of the verified client chain, if one was presented.
    pub fn peer_leaf(&self) -> Option<&CertificateDer<'static>> {
        self.peer_certificates?.first()
    }

    fn is_empty(&self) -> bool {
        self.token.is_none() && self.peer_leaf().is_none()
    }
}

/// The chain: the first authenticator that recognizes the credential decides it.
#[derive(Clone, Default)]
pub struct Authenticators(Vec<Arc<dyn Authenticator>>);

impl std::fmt::Debug for Authenticators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let accepts: Vec<&str> = self.0.iter().map(|a| a.accepts()).collect();
        f.debug_tuple("Authenticators").field(&accepts).finish()
    }
}

impl Authenticators {
    #[must_use]
    pub fn with(mut self, authenticator: impl Authenticator) -> Self {
        self.0.push(Arc::new(authenticator));
        self
    }

    /// This chain, then `more`.
    #[must_use]
    pub fn then(mut self, more: Authenticators) -> Self {
        self.0.extend(more.0);
        self
    }

    /// Who `credential` proves the caller is. No credential at all is [`Refusal::NoCredential`];
    /// one that no authenticator recognizes is [`Refusal::Unrecognized`], naming what each
    /// accepts.
    pub async fn authenticate(&self, credential: &Credential<'_>) -> Result<Grant, Refusal> {
        if credential.is_empty() {
            return Err(Refusal::NoCredential);
        }
        match self.0.iter().find(|a| a.recognizes(credential)) {
            Some(authenticator) => authenticator.authenticate(credential).await,
            None => Err(Refusal::Unrecognized {
                expected: self
                    .0
                    .iter()
                    .map(|a| a.accepts())
                    .collect::<Vec<_>>()
                    .join(", or "),
            }),
        }
    }
}
