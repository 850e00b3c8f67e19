//! The CA in cert-manager's layout, to and from [`CaFile`]:
//!
//! - `tls.crt`: the signing root's certificate (one, PEM);
//! - `tls.key`: its key (PEM: PKCS#8, or cert-manager's default PKCS#1 / SEC1, which are kept
//!   as they are unless the signer changes);
//! - `ca.crt`: the trust bundle, every root still trusted (the signer first);
//! - [`RETIRING`]: when each older root in `ca.crt` retires, `{"<sha256 of its DER, hex>":
//!   unix}`, with entries kept a week past their time so that a root once retired is not
//!   mistaken for a newly displaced one.
//!
//! A root in `ca.crt` other than the signer with no retire time was displaced by someone else
//! (cert-manager renewed `tls.crt`/`tls.key`, or an operator replaced them by hand): it stays
//! trusted for [`DISPLACED_OVERLAP`] from when a store first saw it so, and the store records
//! that time. So does the signing root the store last used when it is gone from `ca.crt` too
//! (cert-manager writes `ca.crt` as the new root alone).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::KeyPair;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use crate::ca::CaFile;
use crate::files::state_files::invalid;
use crate::traits::StoreError;

pub(super) const TLS_CRT: &str = "tls.crt";
pub(super) const TLS_KEY: &str = "tls.key";
pub(super) const CA_CRT: &str = "ca.crt";
pub(super) const RETIRING: &str = "smi-mesh.retiring.json";

/// How long a root displaced by someone else stays trusted: a store-level constant, a day,
/// the longest certificate lifetime the control issues by default, so that every certificate
/// it signed has been renewed under the new root by then.
pub const DISPLACED_OVERLAP: Duration = Duration::from_secs(24 * 3600);

/// How long a retire time is kept after it passed.
const KEPT_AFTER_RETIRING_SECS: u64 = 7 * 24 * 3600;

/// The Secret's data, decoded.
pub(super) type Data = BTreeMap<String, Vec<u8>>;

/// Names a key of the Secret in errors: `kubernetes:secret/ns/name:tls.key`.
pub(super) fn origin(secret: &str, key: &str) -> std::path::PathBuf {
    format!("{secret}:{key}").into()
}

/// A value that is there and not empty (a `kubernetes.io/tls` Secret made ahead of the
/// control holds empty `tls.crt` and `tls.key`).
pub(super) fn present<'a>(data: &'a Data, key: &str) -> Option<&'a [u8]> {
    data.get(key).map(Vec::as_slice).filter(|v| !v.is_empty())
}

/// The CA keys of a Secret, checked.
#[derive(Debug)]
pub(super) struct CaKeys {
    signer: Vec<u8>,
    /// The signer's key as PKCS#8 PEM (what [`CaFile`] and rcgen read).
    key_pem: String,
    /// `ca.crt`, in order, the signer left out.
    others: Vec<Vec<u8>>,
    retiring: BTreeMap<String, u64>,
}

/// `ca.json`'s shape: [`CaFile`] keeps its roots to the `ca` module, and its JSON is the form
/// the stores share, so the layout goes through it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct CaJson {
    roots: Vec<RootJson>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RootJson {
    cert_pem: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retire_after_unix: Option<u64>,
}

// === impl CaKeys ===

impl CaKeys {
    /// The CA keys of `data` (`secret` names it in errors): `None` when none of them is there;
    /// an error naming the key when one is missing or broken.
    pub fn read(data: &Data, secret: &str) -> Result<Option<CaKeys>, StoreError> {
        let (crt, key, bundle) = (
            present(data, TLS_CRT),
            present(data, TLS_KEY),
            present(data, CA_CRT),
        );
        if crt.is_none() && key.is_none() && bundle.is_none() {
            return Ok(None);
        }
        let restore = "restore it (a new root would make every certificate issued untrusted)";
        let missing = |k: &str| invalid(&origin(secret, k), format!("missing; {restore}"));
        let crt_origin = origin(secret, TLS_CRT);
        let crt = crt.ok_or_else(|| missing(TLS_CRT))?;
        let signer = match certificates(crt, &crt_origin)?.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(invalid(
                    &crt_origin,
                    format!("no PEM certificate; {restore}"),
                ));
            }
            more => {
                let message = format!(
                    "{} certificates; one root CA certificate expected (an intermediate with its chain is not supported here: give it with --ca-cert)",
                    more.len()
                );
                return Err(invalid(&crt_origin, message));
            }
        };
        let key_pem = signing_key(key.ok_or_else(|| missing(TLS_KEY))?, &signer, secret)?;
        let mut others = Vec::new();
        if let Some(bundle) = bundle {
            for cert in certificates(bundle, &origin(secret, CA_CRT))? {
                if cert != signer && !others.contains(&cert) {
                    others.push(cert);
                }
            }
        }
        let retiring = match present(data, RETIRING) {
            Some(json) => serde_json::from_slice(json).map_err(|e| {
                invalid(
                    &origin(secret, RETIRING),
                    format!("{e}; expected {{\"<sha256 of a root's DER, hex>\": <unix seconds>}}"),
                )
            })?,
            None => BTreeMap::new(),
        };
        Ok(Some(CaKeys {
            signer,
            key_pem,
            others,
            retiring,
        }))
    }

    /// The signing root (DER).
    pub fn signer(&self) -> &[u8] {
        &self.signer
    }

    /// The roots, newest first, for [`CaFile`]; `previous` is the signing root the store used
    /// before, kept trusted if someone else displaced it. `true` with it when the Secret does
    /// not say all of it yet (a displaced root's retire time, or its place in `ca.crt`).
    pub fn to_ca_file(
        &self,
        previous: Option<&[u8]>,
        now: u64,
        secret: &str,
    ) -> Result<(CaFile, bool), StoreError> {
        let mut unrecorded = false;
        let mut others: Vec<&[u8]> = self.others.iter().map(Vec::as_slice).collect();
        if let Some(previous) = previous
            && previous != self.signer.as_slice()
            && !others.contains(&previous)
            && self
                .retiring
                .get(&fingerprint(previous))
                .is_none_or(|&t| t > now)
        {
            others.insert(0, previous);
            unrecorded = true;
        }
        let mut roots = vec![RootJson {
            cert_pem: pem("CERTIFICATE", &self.signer),
            key_pem: Some(self.key_pem.clone()),
            retire_after_unix: None,
        }];
        for cert in others {
            let retire = match self.retiring.get(&fingerprint(cert)) {
                Some(&t) => t,
                None => {
                    unrecorded = true;
                    now.saturating_add(DISPLACED_OVERLAP.as_secs())
                }
            };
            roots.push(RootJson {
                cert_pem: pem("CERTIFICATE", cert),
                key_pem: None,
                retire_after_unix: Some(retire),
            });
        }
        let json = serde_json::to_vec(&CaJson { roots })
            .map_err(|e| invalid(&origin(secret, CA_CRT), e.to_string()))?;
        Ok((CaFile::parse(&json, &origin(secret, CA_CRT))?, unrecorded))
    }
}

/// Writes `file` into `data`: `tls.crt` and `tls.key` only when the signer changed (so that
/// cert-manager's encoding stays), `ca.crt` with the roots not retired, and their retire times.
pub(super) fn write_ca(
    file: &CaFile,
    data: &mut Data,
    now: u64,
    secret: &str,
) -> Result<(), StoreError> {
    let ca_origin = origin(secret, CA_CRT);
    let json: CaJson = serde_json::from_slice(&file.to_json(&ca_origin)?)
        .map_err(|e| invalid(&ca_origin, e.to_string()))?;
    let mut ders = Vec::with_capacity(json.roots.len());
    for root in &json.roots {
        match certificates(root.cert_pem.as_bytes(), &ca_origin)?.as_slice() {
            [one] => ders.push(one.clone()),
            _ => return Err(invalid(&ca_origin, "a root is not one certificate".into())),
        }
    }
    let (Some(signer), Some(key_pem)) = (
        ders.first(),
        json.roots.first().and_then(|r| r.key_pem.as_deref()),
    ) else {
        return Err(invalid(&ca_origin, "no signing root with its key".into()));
    };
    let same_signer = present(data, TLS_CRT)
        .and_then(|crt| certificates(crt, &ca_origin).ok())
        .is_some_and(|crt| crt.as_slice() == std::slice::from_ref(signer));
    if !same_signer {
        data.insert(TLS_CRT.into(), pem("CERTIFICATE", signer).into_bytes());
        data.insert(TLS_KEY.into(), key_pem.as_bytes().to_vec());
    }
    let mut bundle = String::new();
    let mut retiring = match present(data, RETIRING) {
        Some(json) => serde_json::from_slice::<BTreeMap<String, u64>>(json)
            .map_err(|e| invalid(&origin(secret, RETIRING), e.to_string()))?,
        None => BTreeMap::new(),
    };
    retiring.retain(|_, t| t.saturating_add(KEPT_AFTER_RETIRING_SECS) > now);
    for (root, der) in json.roots.iter().zip(&ders) {
        if let Some(t) = root.retire_after_unix {
            if t.saturating_add(KEPT_AFTER_RETIRING_SECS) > now {
                retiring.insert(fingerprint(der), t);
            }
            if t <= now {
                continue;
            }
        }
        bundle.push_str(&pem("CERTIFICATE", der));
    }
    data.insert(CA_CRT.into(), bundle.into_bytes());
    if retiring.is_empty() {
        data.remove(RETIRING);
    } else {
        let json =
            serde_json::to_vec_pretty(&retiring).map_err(|e| invalid(&ca_origin, e.to_string()))?;
        data.insert(RETIRING.into(), json);
    }
    Ok(())
}

/// The certificates of a PEM text (DER each); an error naming `origin` when it has a broken
/// one.
fn certificates(pem_text: &[u8], origin: &Path) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut out = Vec::new();
    for cert in CertificateDer::pem_slice_iter(pem_text) {
        let cert = cert.map_err(|e| invalid(origin, format!("not PEM certificates: {e}")))?;
        x509_parser::parse_x509_certificate(&cert)
            .map_err(|e| invalid(origin, format!("not an X.509 certificate: {e}")))?;
        out.push(cert.to_vec());
    }
    Ok(out)
}

/// The key of `tls.key` as PKCS#8 PEM, checked to be the key of `signer`.
fn signing_key(pem_text: &[u8], signer: &[u8], secret: &str) -> Result<String, StoreError> {
    let key_origin = origin(secret, TLS_KEY);
    let fail = |message: String| invalid(&key_origin, format!("{message}; restore the root's key"));
    let key = PrivateKeyDer::from_pem_slice(pem_text)
        .map_err(|e| fail(format!("no PEM private key ({e})")))?;
    let key_pem = pem("PRIVATE KEY", &pkcs8(&key).map_err(fail)?);
    let pair = KeyPair::from_pem(&key_pem).map_err(|e| fail(format!("not a usable key: {e}")))?;
    let (_, cert) = x509_parser::parse_x509_certificate(signer)
        .map_err(|e| invalid(&origin(secret, TLS_CRT), e.to_string()))?;
    if cert
        .tbs_certificate
        .subject_pki
        .subject_public_key
        .data
        .as_ref()
        != pair.public_key_raw()
    {
        return Err(fail(format!(
            "not the key of the certificate in {TLS_CRT} (their public keys differ)"
        )));
    }
    Ok(key_pem)
}

/// A key in PKCS#8, from any of the encodings cert-manager writes.
fn pkcs8(key: &PrivateKeyDer<'_>) -> Result<Vec<u8>, String> {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, RsaKeyPair,
    };
    match key {
        PrivateKeyDer::Pkcs8(key) => Ok(key.secret_pkcs8_der().to_vec()),
        PrivateKeyDer::Sec1(key) => [
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            &ECDSA_P384_SHA384_ASN1_SIGNING,
        ]
        .into_iter()
        .find_map(|alg| EcdsaKeyPair::from_private_key_der(alg, key.secret_sec1_der()).ok())
        .and_then(|pair| pair.to_pkcs8v1().ok())
        .map(|doc| doc.as_ref().to_vec())
        .ok_or_else(|| "an EC key that is not on P-256 or P-384".to_owned()),
        PrivateKeyDer::Pkcs1(key) => RsaKeyPair::from_der(key.secret_pkcs1_der())
            .map_err(|e| format!("not an RSA key: {e}"))
            .and_then(|pair| {
                AsDer::<Pkcs8V1Der<'static>>::as_der(&pair)
                    .map(|der| der.as_ref().to_vec())
                    .map_err(|e| format!("not an RSA key: {e}"))
            }),
        _ => Err("a kind of key this store does not read".to_owned()),
    }
}

/// The hex SHA-256 of a certificate's DER: how [`RETIRING`] names a root.
pub(super) fn fingerprint(der: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// PEM of one DER object, 64 characters a line.
pub(super) fn pem(label: &str, der: &[u8]) -> String {
    let text = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
