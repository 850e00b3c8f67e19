//! How this workload proves its identity to the control: at enrollment with its token (a join
//! token pins the control's CA; any other token, a pod's projected ServiceAccount token, comes
//! with [`MeshConfig::ca_bundle`]), and at each renewal with either its certificate or, for a
//! ServiceAccount token read from a file, the token the file holds now (the kubelet rotates it,
//! and the control re-checks the pod each time).

use std::path::Path;

use smi_core::telemetry::Workload;

use super::{MeshConfig, MeshError};
use crate::control::{
    ClientError, Credentials, enroll_as, enroll_with_ca_as, is_join_token, renew_as,
    renew_with_token_as,
};

/// First contact: a join token pins the CA; any other token needs the configured bundle.
pub(super) async fn enroll(
    config: &MeshConfig,
    names: &Workload,
) -> Result<Credentials, MeshError> {
    if is_join_token(&config.token) {
        return Ok(enroll_as(&config.control, &config.token, Some(names)).await?);
    }
    let bundle = config.ca_bundle.as_deref().ok_or(MeshError::NoCaBundle)?;
    let credentials = enroll_with_ca_as(
        &config.control,
        &config.token,
        bundle,
        &config.trust_domain,
        Some(names),
    )
    .await?;
    Ok(credentials)
}

/// What one renewal presents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Proof {
    /// The current certificate, over mTLS (join tokens, inline tokens, an unreadable file).
    Certificate,
    /// The token the file holds now.
    Token(String),
}

/// How the next renewal proves the identity: a workload that enrolled with a token other
/// than a join token, read from a file, renews with what the file holds now (`read` reads
/// it). A file that cannot be read, or now holds no such token, falls back to the
/// certificate, and the log says so.
pub(super) fn next_proof(
    config: &MeshConfig,
    read: impl FnOnce(&Path) -> std::io::Result<String>,
) -> Proof {
    let Some(path) = config.token_file.as_deref() else {
        return Proof::Certificate;
    };
    if is_join_token(&config.token) {
        return Proof::Certificate;
    }
    match read(path).map(|t| t.trim().to_owned()) {
        Ok(token) if !token.is_empty() && !is_join_token(&token) => Proof::Token(token),
        Ok(_) => {
            tracing::warn!(file = %path.display(), "the token file holds no ServiceAccount token; renewing by certificate instead");
            Proof::Certificate
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read the token file; renewing by certificate instead");
            Proof::Certificate
        }
    }
}

/// One renewal attempt with `proof`.
pub(super) async fn renew(
    config: &MeshConfig,
    current: &Credentials,
    names: &Workload,
    proof: &Proof,
) -> Result<Credentials, ClientError> {
    match proof {
        Proof::Certificate => renew_as(&config.control, current, Some(names)).await,
        Proof::Token(token) => {
            renew_with_token_as(&config.control, current, token, Some(names)).await
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;
    use crate::control::ControlAddr;

    const SA_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOlsic21pLW1lc2giXX0.c2ln";
    const JOIN_TOKEN: &str = "smi1.eyJzdWIiOiJ4In0.bWFj";

    fn config(token: &str, file: Option<&str>) -> MeshConfig {
        let addr = ControlAddr::parse("127.0.0.1:7443").expect("an address");
        let config = MeshConfig::new(addr, token);
        match file {
            Some(path) => config.token_file(path),
            None => config,
        }
    }

    fn never_read(path: &Path) -> io::Result<String> {
        panic!("{} read, but nothing should be", path.display())
    }

    #[test]
    fn a_service_account_token_file_renews_with_what_it_holds_now() {
        let proof = next_proof(&config(SA_TOKEN, Some("/var/run/token")), |path| {
            assert_eq!(path, Path::new("/var/run/token"));
            Ok("rotated.token.now\n".to_owned())
        });
        assert_eq!(proof, Proof::Token("rotated.token.now".to_owned()));
    }

    #[test]
    fn join_tokens_and_inline_tokens_renew_by_certificate() {
        let join = config(JOIN_TOKEN, Some("/var/run/token"));
        assert_eq!(next_proof(&join, never_read), Proof::Certificate);
        let inline = config(SA_TOKEN, None);
        assert_eq!(next_proof(&inline, never_read), Proof::Certificate);
    }

    #[test]
    fn an_unreadable_or_emptied_token_file_falls_back_to_the_certificate() {
        let sa = config(SA_TOKEN, Some("/var/run/token"));
        let gone = next_proof(&sa, |_| Err(io::Error::from(io::ErrorKind::NotFound)));
        assert_eq!(gone, Proof::Certificate);
        assert_eq!(
            next_proof(&sa, |_| Ok(" \n".to_owned())),
            Proof::Certificate
        );
        let join = next_proof(&sa, |_| Ok(JOIN_TOKEN.to_owned()));
        assert_eq!(
            join,
            Proof::Certificate,
            "a join token is spent at enrollment"
        );
    }
}
