//! What authentication yields: a [`Grant`], or a [`Refusal`] that says what to do about it.

use std::time::SystemTime;

use smi_core::telemetry::Workload;
use smi_core::token::TokenError;
use smi_core::{ServiceAccount, ServiceRef};

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
    /// The workload and pod names the credential carries (a renewed certificate's), for a
    /// renewal that gives none.
    pub workload: Option<Workload>,
    /// Whether `workload` is proven (a pod the API server vouches for) rather than claimed: then
    /// it is what the certificate says, whatever names the request asks for.
    pub names_proven: bool,
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

/// Why a credential was refused. Each message says what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no credential: send a join token, or present your workload certificate")]
    NoCredential,
    #[error("the credential is not one this control accepts: expected {expected}")]
    Unrecognized { expected: String },
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
    // ServiceAccount tokens (`kubernetes::token_review`).
    #[error(
        "the Kubernetes API server did not authenticate the ServiceAccount token ({error}): mount the pod's projected token (audience smi-mesh) and send it as it is now (the kubelet rotates it)"
    )]
    TokenNotAuthenticated { error: String },
    #[error(
        "the token is for audiences [{}]; mount a projected token with audience {wanted}", .audiences.join(", ")
    )]
    TokenAudience {
        audiences: Vec<String>,
        wanted: String,
    },
    #[error(
        "the token authenticates {username:?}, which is not a ServiceAccount (system:serviceaccount:<namespace>:<name>): send the pod's projected ServiceAccount token"
    )]
    NotServiceAccount { username: String },
    #[error(
        "the token of ServiceAccount {account} is bound to no pod: a pod-bound projected token is required (a serviceAccountToken projected volume, not a Secret-based or TokenRequest token)"
    )]
    NotPodBound { account: String },
    #[error(
        "pod {pod}, which the token is bound to, no longer exists ({why}): a deleted pod gets no certificate"
    )]
    PodGone { pod: String, why: String },
    #[error(
        "pod {pod} runs as ServiceAccount {runs_as}, but the token is for {token_for}: send the pod's own projected token"
    )]
    AccountMismatch {
        pod: String,
        runs_as: String,
        token_for: String,
    },
    /// The Kubernetes API did not answer (a transport error, a 5xx, no answer in time): the
    /// workload should retry; the Certify API says `UNAVAILABLE`.
    #[error(
        "the Kubernetes API cannot be asked now ({what}: {error}); the credential was not judged: retry"
    )]
    KubernetesUnavailable { what: String, error: String },
}

impl Refusal {
    /// Whether the credential was not judged at all because something the control needs is
    /// down: the caller should retry, not give up.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Refusal::KubernetesUnavailable { .. })
    }
}

fn reason_suffix(reason: &Option<String>) -> String {
    reason
        .as_deref()
        .map_or_else(String::new, |r| format!(" ({r:?})"))
}
