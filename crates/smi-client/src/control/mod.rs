//! The workload's side of the control API.
//!
//! The private key is generated in this process and never leaves it: the control service only
//! ever sees a CSR. On first contact the workload trusts exactly the CA its join token pins; a
//! token that pins none (a pod's projected ServiceAccount token) comes with the control's CA
//! bundle from elsewhere (a mounted ConfigMap: [`enroll_with_ca`]).
//!
//! The control may have several addresses ([`ControlAddr`]); every call connects to the first
//! that answers, starting from the one that answered last (`failover`).

mod addr;
mod connector;
mod credentials;
mod failover;

pub use addr::{ControlAddr, MAX_CONTROL_ADDRS};
pub use credentials::{Credentials, PemFiles};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use smi_core::proto::v1::{self, control_client::ControlClient};
use smi_core::telemetry::Workload;
use smi_core::token;
use tonic::transport::Channel;

pub use smi_core::proto::MAX_MESSAGE_BYTES;

/// A control API client on `channel`, with the message limit set deliberately.
pub fn control_client(channel: Channel) -> ControlClient<Channel> {
    ControlClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// Why talking to the control service failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("join token: {0}")]
    Token(#[from] token::TokenError),
    /// `addr` is the item that is wrong, or the whole list when the list is.
    #[error("control address {addr:?}: {problem}")]
    Address { addr: String, problem: String },
    /// `addr` lists every address tried; `message` says why each failed.
    #[error("cannot connect to the control service at {addr}: {message}")]
    Connect { addr: String, message: String },
    #[error("the control service refused: {0}")]
    Refused(String),
    #[error("the control service sent something unusable: {0}")]
    Invalid(String),
    #[error("generating a key or CSR: {0}")]
    Key(#[from] rcgen::Error),
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        ClientError::Refused(format!("{:?}: {}", status.code(), status.message()))
    }
}

/// First contact: proves the identity with a join token, trusting only the CA it pins (and, in
/// it, only the control's own identity). Sends no workload names ([`enroll_as`] does).
pub async fn enroll(addr: &ControlAddr, join_token: &str) -> Result<Credentials, ClientError> {
    enroll_as(addr, join_token, None).await
}

/// [`enroll`], telling the control this workload's names (its workload and pod; the namespace
/// is the identity's, so `names.namespace` is not sent), which the CA writes into the
/// certificate for peers to read.
pub async fn enroll_as(
    addr: &ControlAddr,
    join_token: &str,
    names: Option<&Workload>,
) -> Result<Credentials, ClientError> {
    let claims = token::parse(join_token)?.claims;
    let ca = claims.ca_der()?;
    let tls = smi_tls::Mtls::new(ca.iter().map(Vec::as_slice))
        .and_then(|mtls| mtls.control_client(None, &claims.trust_domain))
        .map_err(|e| ClientError::Invalid(format!("the join token's CA: {e}")))?;
    let channel = addr.connect(tls).await?;
    certify(channel, join_token, names).await
}

/// Whether `token` has the form of a join token (`smi1.`...), which pins the control's CA;
/// any other token (a Kubernetes ServiceAccount token) is left for the control to judge, and
/// needs the CA from elsewhere ([`enroll_with_ca`]).
pub fn is_join_token(token: &str) -> bool {
    token
        .trim()
        .strip_prefix(token::PREFIX)
        .is_some_and(|rest| rest.starts_with('.'))
}

/// First contact with a token that pins no CA (a pod's projected ServiceAccount token):
/// trusts the CA certificates of `bundle_pem` (PEM, as mounted from a ConfigMap) and, under
/// them, only the control's own identity in `trust_domain`. Sends no workload names
/// ([`enroll_with_ca_as`] does).
pub async fn enroll_with_ca(
    addr: &ControlAddr,
    token: &str,
    bundle_pem: &str,
    trust_domain: &str,
) -> Result<Credentials, ClientError> {
    enroll_with_ca_as(addr, token, bundle_pem, trust_domain, None).await
}

/// [`enroll_with_ca`], with this workload's names (as [`enroll_as`]).
pub async fn enroll_with_ca_as(
    addr: &ControlAddr,
    token: &str,
    bundle_pem: &str,
    trust_domain: &str,
    names: Option<&Workload>,
) -> Result<Credentials, ClientError> {
    let bundle = bundle_der(bundle_pem)?;
    let tls = smi_tls::Mtls::new(bundle.iter().map(|c| c.as_ref()))
        .and_then(|mtls| mtls.control_client(None, trust_domain))
        .map_err(|e| ClientError::Invalid(format!("the control's CA bundle: {e}")))?;
    let channel = addr.connect(tls).await?;
    certify(channel, token, names).await
}

/// The certificates of a PEM bundle; none at all is an error.
fn bundle_der(pem: &str) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let bundle = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClientError::Invalid(format!("the control's CA bundle (PEM): {e}")))?;
    if bundle.is_empty() {
        return Err(ClientError::Invalid(
            "the control's CA bundle has no PEM certificate".to_owned(),
        ));
    }
    Ok(bundle)
}

/// Renewal: a new key and certificate for the same identity, authenticated by the current one.
/// Sends no workload names ([`renew_as`] does).
pub async fn renew(addr: &ControlAddr, current: &Credentials) -> Result<Credentials, ClientError> {
    renew_as(addr, current, None).await
}

/// [`renew`], with this workload's names (as [`enroll_as`]).
pub async fn renew_as(
    addr: &ControlAddr,
    current: &Credentials,
    names: Option<&Workload>,
) -> Result<Credentials, ClientError> {
    let channel = connect(addr, current).await?;
    certify(channel, "", names).await
}

/// Renewal by a token that proves the identity afresh (the rotated ServiceAccount token the
/// workload enrolled with): a Certify with the token, as at enrollment, trusting the current
/// bundle. The current certificate is not presented: the token decides.
pub async fn renew_with_token_as(
    addr: &ControlAddr,
    current: &Credentials,
    token: &str,
    names: Option<&Workload>,
) -> Result<Credentials, ClientError> {
    let tls = current
        .mtls()
        .and_then(|mtls| mtls.control_client(None, &current.spiffe_id().trust_domain))
        .map_err(|e| ClientError::Invalid(e.to_string()))?;
    let channel = addr.connect(tls).await?;
    certify(channel, token, names).await
}

/// An mTLS channel to the control service with these credentials (for Watch, Ack, Register).
pub async fn connect(
    addr: &ControlAddr,
    credentials: &Credentials,
) -> Result<Channel, ClientError> {
    let tls = credentials
        .control_client_config()
        .map_err(|e| ClientError::Invalid(e.to_string()))?;
    addr.connect(tls).await
}

async fn certify(
    channel: Channel,
    token: &str,
    names: Option<&Workload>,
) -> Result<Credentials, ClientError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let csr = CertificateParams::default().serialize_request(&key)?;
    let response = control_client(channel)
        .certify(v1::CertifyRequest {
            csr_der: csr.der().to_vec(),
            token: token.to_owned(),
            names: names.map(|w| v1::WorkloadNames {
                workload: w.name.clone(),
                pod: w.pod.clone(),
            }),
        })
        .await?
        .into_inner();
    let not_after = u64::try_from(response.not_after_unix)
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Credentials::new(
        key,
        response.certificate_chain_der,
        response.trust_bundle_der,
        &response.spiffe_id,
        not_after,
    )
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_tokens_are_told_from_other_tokens_by_their_prefix() {
        assert!(is_join_token("smi1.eyJzdWIiOiJ4In0.bWFj"));
        assert!(is_join_token(" smi1.a.b\n"));
        assert!(!is_join_token(
            "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJzbWktbWVzaCJ9.c2ln"
        ));
        assert!(!is_join_token("smi10.a.b"));
        assert!(!is_join_token(""));
    }

    #[test]
    fn a_ca_bundle_must_hold_a_pem_certificate() {
        let pem = smi_core::pem::certificates(&[[1u8, 2, 3]]);
        assert_eq!(bundle_der(&pem).map(|b| b.len()).ok(), Some(1));
        let none = bundle_der("not PEM at all").unwrap_err();
        assert!(none.to_string().contains("no PEM certificate"), "{none}");
    }
}
