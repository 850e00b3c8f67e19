//! The CA's state on disk, in the control's state directory:
//!
//! - `ca.json` (0600): the trusted roots, newest first; the newest carries its private key and
//!   signs; older ones stay in the trust bundle until their `retire_after` time (rotation).
//! - `bundle.pem` (0644): the current trust bundle, for tools (curl, openssl) and operators.
//! - `token.key` (0600): the key join tokens are signed with.
//!
//! Every write goes to a temporary file created with its final mode and is renamed into place,
//! so a reader (the running control) never sees half a file or a key readable by others.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

use super::{Authority, random_serial};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("generating a root: {0}")]
    Generate(#[from] rcgen::Error),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CaFile {
    roots: Vec<Root>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Root {
    cert_pem: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retire_after_unix: Option<u64>,
}

/// The CA state directory.
#[derive(Clone, Debug)]
pub struct CaStore {
    dir: PathBuf,
}

const ROOT_VALIDITY_DAYS: i64 = 3650;

impl CaStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.json")
    }

    pub fn bundle_file(&self) -> PathBuf {
        self.dir.join("bundle.pem")
    }

    /// Loads the CA, creating a new P-256 root on first start.
    pub fn open_or_init(&self, trust_domain: &str) -> Result<Authority, StoreError> {
        let path = self.ca_file();
        if !path.exists() {
            fs::create_dir_all(&self.dir).map_err(|source| io(&self.dir, source))?;
            let file = CaFile {
                roots: vec![new_root(trust_domain)?],
            };
            self.save(&file)?;
            tracing::info!(path = %path.display(), "created a new root CA");
        }
        self.load(trust_domain)
    }

    /// Loads the CA as it is on disk; retired roots are left out of the bundle.
    pub fn load(&self, trust_domain: &str) -> Result<Authority, StoreError> {
        let path = self.ca_file();
        let file = self.read()?;
        let invalid = |message: String| StoreError::Invalid {
            path: path.clone(),
            message,
        };
        let signer = file
            .roots
            .first()
            .ok_or_else(|| invalid("no roots".into()))?;
        let key_pem = signer
            .key_pem
            .as_deref()
            .ok_or_else(|| invalid("the newest root has no key".into()))?;
        let key = KeyPair::from_pem(key_pem).map_err(|e| invalid(format!("root key: {e}")))?;
        let issuer = Issuer::from_ca_cert_pem(&signer.cert_pem, key)
            .map_err(|e| invalid(format!("root certificate: {e}")))?;
        let now = unix_now();
        let mut bundle = Vec::new();
        for root in &file.roots {
            if root.retire_after_unix.is_some_and(|t| t <= now) {
                continue;
            }
            bundle.push(
                CertificateDer::from_pem_slice(root.cert_pem.as_bytes())
                    .map_err(|e| invalid(format!("root certificate: {e}")))?,
            );
        }
        Ok(Authority::new(issuer, Vec::new(), bundle, trust_domain))
    }

    /// When the next root in the bundle retires, if any (the control reloads then).
    pub fn next_retirement(&self) -> Option<SystemTime> {
        let now = unix_now();
        self.read()
            .ok()?
            .roots
            .iter()
            .filter_map(|r| r.retire_after_unix)
            .filter(|&t| t > now)
            .min()
            .map(|t| UNIX_EPOCH + Duration::from_secs(t))
    }

    /// Starts signing with a new root; the previous ones stay trusted for `overlap`, so that
    /// certificates they signed keep working until workloads have renewed.
    pub fn rotate(&self, trust_domain: &str, overlap: Duration) -> Result<(), StoreError> {
        let mut file = self.read()?;
        let retire = unix_now() + overlap.as_secs();
        let now = unix_now();
        file.roots
            .retain(|r| r.retire_after_unix.is_none_or(|t| t > now));
        for old in &mut file.roots {
            old.key_pem = None;
            old.retire_after_unix = Some(old.retire_after_unix.map_or(retire, |t| t.min(retire)));
        }
        file.roots.insert(0, new_root(trust_domain)?);
        self.save(&file)
    }

    /// The join-token signing key, created on first use.
    pub fn token_key(&self) -> Result<Vec<u8>, StoreError> {
        let path = self.dir.join("token.key");
        if let Ok(text) = fs::read_to_string(&path) {
            use base64::Engine;
            return base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| StoreError::Invalid {
                    path,
                    message: format!("not base64: {e}"),
                });
        }
        fs::create_dir_all(&self.dir).map_err(|source| io(&self.dir, source))?;
        let mut key = vec![0u8; 32];
        aws_lc_rs::rand::fill(&mut key).map_err(|_| StoreError::Invalid {
            path: path.clone(),
            message: "no randomness available".into(),
        })?;
        use base64::Engine;
        let text = base64::engine::general_purpose::STANDARD.encode(&key);
        write_atomic(&path, text.as_bytes(), 0o600)?;
        Ok(key)
    }

    fn read(&self) -> Result<CaFile, StoreError> {
        let path = self.ca_file();
        let text = fs::read_to_string(&path).map_err(|source| io(&path, source))?;
        serde_json::from_str(&text).map_err(|e| StoreError::Invalid {
            path,
            message: e.to_string(),
        })
    }

    fn save(&self, file: &CaFile) -> Result<(), StoreError> {
        let text = serde_json::to_string_pretty(file).map_err(|e| StoreError::Invalid {
            path: self.ca_file(),
            message: e.to_string(),
        })?;
        write_atomic(&self.ca_file(), text.as_bytes(), 0o600)?;
        let now = unix_now();
        let bundle: String = file
            .roots
            .iter()
            .filter(|r| r.retire_after_unix.is_none_or(|t| t > now))
            .map(|r| r.cert_pem.as_str())
            .collect();
        write_atomic(&self.bundle_file(), bundle.as_bytes(), 0o644)
    }
}

fn new_root(trust_domain: &str) -> Result<Root, StoreError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "smi-mesh");
    // Distinct subjects per root: OpenSSL mistakes certificates with equal subjects for each other.
    let serial = random_serial();
    dn.push(
        DnType::CommonName,
        format!(
            "smi-mesh root {trust_domain} {:02x}{:02x}{:02x}{:02x}",
            serial[1], serial[2], serial[3], serial[4]
        ),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + time::Duration::days(ROOT_VALIDITY_DAYS);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let cert = params.self_signed(&key)?;
    Ok(Root {
        cert_pem: cert.pem(),
        key_pem: Some(key.serialize_pem()),
        retire_after_unix: None,
    })
}

/// Writes `bytes` to `path` through a temporary file that is created with `mode`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|source| io(&tmp, source))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|source| io(&tmp, source))?;
    fs::rename(&tmp, path).map_err(|source| io(path, source))
}

fn io(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A CA the operator provides (`--ca-cert`/`--ca-key`, PEM): a root, or an intermediate with
/// the roots above it in `bundle` (PEM, optional; without it the CA certificate is the anchor).
pub fn load_provided(
    cert: &Path,
    key: &Path,
    bundle: Option<&Path>,
    trust_domain: &str,
) -> Result<Authority, StoreError> {
    let read = |p: &Path| fs::read_to_string(p).map_err(|source| io(p, source));
    let invalid = |p: &Path, message: String| StoreError::Invalid {
        path: p.to_owned(),
        message,
    };
    let cert_pem = read(cert)?;
    let signing_key = KeyPair::from_pem(&read(key)?).map_err(|e| invalid(key, e.to_string()))?;
    let issuer = Issuer::from_ca_cert_pem(&cert_pem, signing_key)
        .map_err(|e| invalid(cert, e.to_string()))?;
    let ca_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| invalid(cert, e.to_string()))?;
    let roots = match bundle {
        Some(path) => CertificateDer::pem_slice_iter(read(path)?.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(path, e.to_string()))?,
        None => vec![ca_der.clone()],
    };
    if roots.is_empty() {
        return Err(invalid(bundle.unwrap_or(cert), "no certificates".into()));
    }
    // An intermediate travels with every leaf so peers can chain up to the roots they trust.
    let intermediates = if roots.contains(&ca_der) {
        Vec::new()
    } else {
        vec![ca_der]
    };
    Ok(Authority::new(issuer, intermediates, roots, trust_domain))
}
